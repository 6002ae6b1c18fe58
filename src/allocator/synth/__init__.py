"""Seeded synthetic data: canonical tables (:mod:`.canonical`) and raw registry data of whole
provinces (:mod:`.province`), which go through identification and candidates.

See each module for the assumptions behind every number.
"""

from allocator.synth.canonical import (
    PRESETS,
    TABLE_NAMES,
    generate_canonical,
    generate_preset,
    write_tables,
)
from allocator.synth.province import PROVINCE_PRESETS, generate_province, generate_province_preset

__all__ = ["PRESETS", "PROVINCE_PRESETS", "TABLE_NAMES", "generate_canonical", "generate_preset",
           "generate_province", "generate_province_preset", "write_tables"]
