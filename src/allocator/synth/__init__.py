"""Seeded synthetic data: canonical tables for a synthetic western province.

See :mod:`allocator.synth.canonical` for the assumptions behind every number.
"""

from allocator.synth.canonical import (
    PRESETS,
    TABLE_NAMES,
    generate_canonical,
    generate_preset,
    write_tables,
)

__all__ = ["PRESETS", "TABLE_NAMES", "generate_canonical", "generate_preset", "write_tables"]
