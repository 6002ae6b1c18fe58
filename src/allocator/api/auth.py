"""API keys: made by an admin command, sent as ``Authorization: Bearer KEY``, scoped to a region.

A key is ``alk_<key id>_<secret>``. Only the SHA-256 of the whole key is stored. A fast hash
is enough here: the secret is 32 random bytes (256 bits), so guessing it is hopeless at any
hashing speed, while a slow salted hash (scrypt, pbkdf2) would cost every request tens of
milliseconds and could not be looked up by index. The key id is public and names the key in
listings and logs.

Scope: a key for region R may submit data whose counties all lie in R's subtree, and sees
the plans whose region path (the root region down to the lowest region holding every
county) passes through R. The admin region ``*`` sees and may submit everything.
"""

from __future__ import annotations

import hashlib
import secrets

from allocator.api.store import ADMIN_REGION, ApiKey, JobStore

KEY_PREFIX = "alk_"


def hash_key(key: str) -> str:
    """SHA-256 hex digest of a key, as stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(store: JobStore, region: str, name: str = "") -> tuple[ApiKey, str]:
    """A new key for ``region`` (``*`` for an admin key); returns the stored record and the
    key itself, which is shown once and never stored."""
    region = region.strip()
    if not region or any(ch.isspace() for ch in region):
        raise ValueError(f"a region id is one word, e.g. a province or county id, or {ADMIN_REGION!r} (got {region!r})")
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return store.add_key(key_id, hash_key(key), region, name), key


def find_key(store: JobStore, key: str) -> ApiKey | None:
    """The active key record for a presented key, or None."""
    if not key.startswith(KEY_PREFIX):
        return None
    return store.key_by_hash(hash_key(key))
