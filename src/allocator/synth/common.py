"""Helpers every generator shares: text arrays, numbered ids, place names, rounding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

SYLLABLES = np.array(["an", "bai", "chang", "da", "dong", "feng", "gui", "he", "hua", "jin", "kai", "lan",
                      "long", "ma", "nan", "ning", "ping", "qian", "qing", "ren", "shan", "shui", "tai",
                      "tian", "wu", "xi", "xin", "yang", "yun", "zhong"])

def text_array(values) -> pd.api.extensions.ExtensionArray:
    """A pandas ``str`` array from a numpy/pyarrow array of text."""
    return pd.array(pa.array(values, type=pa.large_string()), dtype="str")


def numbered_ids(prefix: str, n: int, width: int) -> pa.Array:
    """``prefix`` + 1-based number zero-padded to ``width`` (wider if needed)."""
    width = max(width, len(str(n)))
    numbers = pc.cast(pa.array(np.arange(1, n + 1, dtype=np.int64)), pa.large_string())
    return pc.binary_join_element_wise(pa.scalar(prefix, pa.large_string()), pc.utf8_lpad(numbers, width, "0"),
                                       pa.scalar("", pa.large_string()))


def place_names(rng: np.random.Generator, n: int, suffix: str) -> np.ndarray:
    """Pinyin-like place names: two syllables + suffix."""
    first = np.strings.capitalize(SYLLABLES[rng.integers(0, len(SYLLABLES), n)])
    second = SYLLABLES[rng.integers(0, len(SYLLABLES), n)]
    return np.strings.add(np.strings.add(first, second), suffix)


def round_to(values: np.ndarray, step: float) -> np.ndarray:
    """``values`` rounded to multiples of ``step``."""
    return np.round(np.asarray(values, dtype=float) / step) * step


__all__ = ["SYLLABLES", "numbered_ids", "place_names", "round_to", "text_array"]
