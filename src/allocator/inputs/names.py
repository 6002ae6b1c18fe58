"""Names of regions and villages from the input tables, to stand beside their ids wherever a
person reads (the report, explain's sentences, the command line's summaries): ``County 1 (C1)``.
An id without a name (empty, missing) stands alone: never ``nan`` or ``None``."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd


def names(frame: pd.DataFrame | None, key: str) -> pd.Series:
    """``name`` by ``key`` (as text) of an input table: the first row of each id, ids without a name left out."""
    if frame is None or "name" not in frame.columns or key not in frame.columns:
        return pd.Series(dtype=object)
    first = frame.drop_duplicates(key)
    text = first["name"].where(first["name"].notna(), "").astype(str).str.strip()
    keep = (text != "").to_numpy() & ~text.str.lower().isin(("nan", "none", "<na>")).to_numpy()
    return pd.Series(text.to_numpy()[keep], index=first[key].astype(str).to_numpy()[keep], dtype=object)


def region_names(tables: Mapping[str, pd.DataFrame]) -> pd.Series:
    """Region (province, county, township) names by ``region_id``."""
    return names(tables.get("regions"), "region_id")


def village_names(tables: Mapping[str, pd.DataFrame]) -> pd.Series:
    """Village names by ``village_id`` (the canonical villages table, else the raw one)."""
    return names(tables.get("villages", tables.get("villages_raw")), "village_id")


def label(identifier, name) -> str:
    """``Name (ID)``, or the id alone without a name (empty, None, NaN)."""
    text = str(identifier)
    return f"{name} ({text})" if isinstance(name, str) and name.strip() else text


def named(identifier, known: Mapping | pd.Series) -> str:
    """:func:`label` of ``identifier`` with its name in ``known`` (by id, as :func:`names` gives)."""
    return label(identifier, known.get(str(identifier)) if len(known) else None)


__all__ = ["label", "named", "names", "region_names", "village_names"]
