"""What belongs to whom: output folders allocator owns, and inputs that belong together.

**Output folders.** Every folder allocator writes holds :data:`MANIFEST`: its kind (a plan, a
progress record, ...) and the SHA-256 of every file in it, listed from the files actually on
disk once writing is done (so a new output file is listed without anyone editing a list). A
folder is allocator's own only if every file in it is listed there with that hash: anything
else — a file of the user's, or one of our names that we did not write — makes
:func:`check_output_folder` refuse it, so nothing of the user's is overwritten.
:func:`output_folder` wraps a writer: check before, manifest after, and the listing of an
enclosing allocator folder (a plan folder holding ``monitor/``) brought up to date.

**Fingerprints.** :func:`input_fingerprint` is one SHA-256 over what a scenario's data is
(its table files or its generator's settings), kept in a plan's ``manifest.input_fingerprint``;
:func:`plan_fingerprint` hashes a plan's written tables. :func:`check_plan_inputs` refuses a
plan made from other inputs and :func:`check_record_plan` a progress record drawn from
another plan, both as :class:`~allocator.errors.InputMismatch` naming both fingerprints.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from allocator.errors import InputError, InputMismatch, Issue
from allocator.inputs.raw import RAW_SPECS
from allocator.inputs.scenario import Scenario, file_sha256, scenario_files
from allocator.inputs.tables import OPTIONAL_TABLES, REQUIRED_TABLES, table_files, table_path, text_encoding

MANIFEST = "allocator-manifest.json"
SHOWN = 12  # foreign files named in an error
SHORT = 16  # hex digits of a fingerprint shown in messages
_active: contextvars.ContextVar[tuple[Path, ...]] = contextvars.ContextVar("allocator_output_folders", default=())


def read_manifest(folder: str | Path) -> dict | None:
    """The folder's manifest, or None when it has none (or not one of ours)."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict) else None


def _files(folder: Path) -> list[str]:
    """Every file under ``folder`` but its own manifest, as sorted relative POSIX paths."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if (p.is_file() or p.is_symlink()) and p != folder / MANIFEST)


def foreign_files(folder: str | Path) -> list[str]:
    """The files under ``folder`` that its manifest does not list with their present hash
    (every file when there is no manifest); empty for a missing or empty folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    manifest = read_manifest(folder)
    listed = (manifest or {}).get("files", {})
    foreign = [MANIFEST] if manifest is None and (folder / MANIFEST).exists() else []
    return foreign + [name for name in _files(folder) if listed.get(name) is None or (folder / name).is_symlink()
                      or file_sha256(folder / name) != listed[name]]


def check_output_folder(folder: str | Path, kind: str | None = None) -> None:
    """Raise :class:`InputError` unless ``folder`` is missing, empty or allocator's own output
    (of ``kind``, when given): it then names the files allocator did not write."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError([Issue(str(folder), "exists and is not a folder",
                                expected=f"a folder for {kind or 'output'}")])
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    foreign = foreign_files(folder)
    if foreign:
        shown = ", ".join(foreign[:SHOWN]) + (f" and {len(foreign) - SHOWN} more" if len(foreign) > SHOWN else "")
        raise InputError([Issue(str(folder), "the folder holds files allocator did not write (or that changed "
                                "since); choose another folder, or move them away, so nothing of yours is "
                                "overwritten", found=shown)])
    found = (read_manifest(folder) or {}).get("kind")
    if kind is not None and found not in (kind, None):
        raise InputError([Issue(str(folder), f"the folder holds allocator output of another kind ({found}, not "
                                f"{kind}); choose another folder", expected=f"a new or empty folder, or an earlier "
                                f"{kind}")])


def write_manifest(folder: str | Path, kind: str | None = None, **facts) -> dict:
    """List every file now under ``folder`` with its SHA-256 in :data:`MANIFEST` (keeping the
    kind and facts of an earlier manifest unless given); returns the manifest."""
    folder = Path(folder)
    manifest = {**(read_manifest(folder) or {}), **facts}
    manifest.pop("files", None)
    manifest["kind"] = kind or manifest.get("kind")
    manifest["files"] = {name: file_sha256(folder / name) for name in _files(folder)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def _listing(folder: Path) -> dict[str, str]:
    """The files a folder's manifest vouches for, and the manifest itself, with their SHA-256."""
    return {**read_manifest(folder)["files"], MANIFEST: file_sha256(folder / MANIFEST)}


def _update_enclosing(folder: Path, active: tuple[Path, ...]) -> None:
    """Put the listing of ``folder`` (just written) into the manifests of the allocator folders
    around it, innermost first (those being written now list themselves when they are done)."""
    inner = folder
    for outer in folder.parents:
        manifest = read_manifest(outer)
        if outer in active or manifest is None:
            return
        prefix = inner.relative_to(outer).as_posix() + "/"
        files = {k: v for k, v in manifest["files"].items() if not k.startswith(prefix)}
        files.update({prefix + name: digest for name, digest in _listing(inner).items()})
        manifest["files"] = dict(sorted(files.items()))
        (outer / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        inner = outer


@contextlib.contextmanager
def output_folder(folder: str | Path, kind: str | None = None, **facts) -> Iterator[Path]:
    """Write allocator output into ``folder``: refuse it unless :func:`check_output_folder`
    passes (not checked again inside a folder being written), create it, and when done (also
    after a failure: what was written is allocator's) write its manifest and update the listing
    of any allocator folder around it. ``kind`` None keeps the folder's kind: for commands that
    add files to a folder (explain, report)."""
    folder = Path(folder)
    resolved = folder.resolve()
    active = _active.get()
    if not any(resolved == a or a in resolved.parents for a in active):
        check_output_folder(folder, kind)
    folder.mkdir(parents=True, exist_ok=True)
    token = _active.set((*active, resolved))
    try:
        yield folder
    finally:
        _active.reset(token)
        write_manifest(folder, kind, **facts)
        _update_enclosing(resolved, active)


def input_hashes(scenario: Scenario) -> dict[str, str]:
    """SHA-256 of the scenario file and every input table file, for the run manifest."""
    hashes = {}
    if scenario.source is not None:
        hashes[scenario.source.name] = file_sha256(scenario.source)
        for base in scenario_files(scenario)[1:]:  # the bases of an override file
            hashes[os.path.relpath(base, scenario.source.parent)] = file_sha256(base)
    catalog = scenario.catalog_path()
    if catalog is not None and catalog.is_file():
        hashes[catalog.name] = file_sha256(catalog)
    folder = scenario.data_dir()
    if folder is not None:
        for path in table_files(Path(folder), data_tables()):  # a workbook of several tables once
            hashes[path.name] = file_sha256(path)
    return hashes


# --- fingerprints ----------------------------------------------------------------------------
def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def data_tables() -> tuple[str, ...]:
    """The base names of the tables a scenario's data may hold (canonical and raw)."""
    return REQUIRED_TABLES + OPTIONAL_TABLES + tuple(RAW_SPECS)


def input_fingerprint(scenario, hashes: dict[str, str] | None = None) -> str:
    """One SHA-256 over what the scenario's data is: the SHA-256 of each table file of its data
    folder (taken from ``hashes``, :func:`allocator.inputs.provenance.input_hashes`, when given), or its
    generator's preset, seed, options and years; and the encoding the scenario declares. Solver
    settings, policy and money changes are not part of it: scenarios of the same data share it."""
    folder = scenario.data_dir()
    if folder is None:
        return _digest({"generate": scenario.generate.model_dump(), "years": [scenario.start_year,
                                                                             scenario.deadline_year]})
    tables = {path.name: (hashes or {}).get(path.name) or file_sha256(path)
              for path in table_files(Path(folder), data_tables())}
    return _digest({"tables": tables, **({"encoding": scenario.encoding} if scenario.encoding else {})})


def table_encodings(scenario) -> dict[str, str | None]:
    """The text encoding of each CSV table of the scenario's data folder (None: it decodes in
    none of those tried), for the run manifest."""
    folder = scenario.data_dir()
    paths = [table_path(Path(folder), name) for name in data_tables()] if folder is not None else []
    return {path.name: text_encoding(path, scenario.encoding) for path in paths
            if path is not None and path.suffix == ".csv"}


def made_from(scenario) -> str | None:
    """The input fingerprint the scenario's data folder was made from (``allocator candidates``
    records it), while the folder is still exactly what allocator wrote; else None."""
    folder = scenario.data_dir()
    if folder is None or foreign_files(folder):
        return None
    return (read_manifest(folder) or {}).get("made_from")


def plan_fingerprint(folder: str | Path, input_fp: str | None, tables: Sequence[str]) -> str:
    """SHA-256 of a plan's written ``tables`` (base names of its CSV files) and the inputs it
    was made from: the plan's identity, which a progress record drawn from it carries."""
    folder = Path(folder)
    return _digest({"inputs": input_fp, "tables": {name: file_sha256(folder / f"{name}.csv") for name in tables}})


def plan_inputs(summary: dict) -> tuple[str, ...]:
    """The input fingerprints a plan answers to: its own and the one its tables were made from."""
    manifest = summary.get("manifest") or {}
    return tuple(fp for fp in (manifest.get("input_fingerprint"), manifest.get("made_from")) if fp)


def short(fingerprint: str | None) -> str:
    """A fingerprint as shown in messages."""
    return fingerprint[:SHORT] if fingerprint else "none"


def check_plan_inputs(summary: dict, fingerprint: str, *, plan: str, inputs: str) -> None:
    """Raise :class:`InputMismatch` unless the plan (its ``summary``; named ``plan``) was made
    from inputs of ``fingerprint`` (those of ``inputs``, e.g. a scenario file)."""
    own = plan_inputs(summary)
    if fingerprint in own:
        return
    found = " or ".join(map(short, own)) if own else "none (a plan written before fingerprints: solve again)"
    raise InputMismatch([Issue(plan, f"the plan was made from other inputs than {inputs}", expected=f"a plan of "
                               f"inputs {short(fingerprint)} ({inputs})", found=f"inputs {found}")])


def check_record_plan(record_plan: str, record_inputs: str, summary: dict, *, record: str, plan: str) -> None:
    """Raise :class:`InputMismatch` when a progress record (``record``) says it was drawn from
    another plan than ``summary``'s (named ``plan``), or from one of other inputs; a record that
    names no plan (made by hand) is not checked. A re-plan answers to its own records and to
    those of the plans it re-planned (``replan_of``)."""
    if not record_plan and not record_inputs:
        return
    own = summary.get("plan_fingerprint")
    lineage = [own, *(summary.get("replan_of") or [])]
    inputs = plan_inputs(summary)
    if (not record_plan or record_plan in lineage) and (not record_inputs or record_inputs in inputs):
        return
    raise InputMismatch([Issue(record, f"the progress record was drawn from another plan than {plan}",
                               expected=f"a record of plan {short(own)} (inputs "
                                        f"{' or '.join(map(short, inputs)) or 'none'})",
                               found=f"plan {short(record_plan)} (inputs {short(record_inputs)})")])


__all__ = ["MANIFEST", "check_output_folder", "check_plan_inputs", "check_record_plan", "file_sha256",
           "foreign_files", "input_fingerprint", "input_hashes", "made_from", "output_folder", "plan_fingerprint",
           "plan_inputs", "read_manifest", "table_encodings", "write_manifest"]
