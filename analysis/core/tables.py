"""Result tables: tidy CSVs written atomically at a fixed precision, and compared numerically.

"Same numbers" in this lab: the same seed and inputs give bit-identical tables on one host; on
another host (another CPU's or GPU's kernels) every float agrees within `RTOL` / `ATOL` and every
other column (names, keys, counts) exactly. CSVs store floats with `FLOAT_FORMAT` (6 significant
digits), so a committed table is compared with a regenerated one by `table_differences`, never
byte for byte. A measurement that later runs read back (`write_csv(..., exact=True)`) keeps every digit:
each float as its shortest repr, which reads back to the same float, so what is derived from it is the
same whether it was just measured or read from the file.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .errors import not_a_command
from .files import write_atomic

__all__ = ["write_csv", "csv_writer", "read_csv", "table_differences", "human_count", "human_bytes", "FLOAT_FORMAT", "RTOL",
           "ATOL"]

FLOAT_FORMAT = "%.6g"
RTOL, ATOL = 1e-4, 1e-6


def csv_writer(df: pd.DataFrame, path: str | os.PathLike, exact: bool = False) -> Callable[[Path], Any]:
    """`write(tmp)` of `write_csv` (for `core.files.write_set`): tidy CSV, no index, floats at
    `FLOAT_FORMAT` (`exact`: every digit); a `.gz` path is gzip-compressed, with no timestamp in its header."""
    float_format = None if exact else FLOAT_FORMAT   # None: pandas writes the shortest round-trip repr
    if Path(path).suffix != ".gz":
        return lambda tmp: df.to_csv(tmp, index=False, float_format=float_format, lineterminator="\n")
    text = df.to_csv(index=False, float_format=float_format, lineterminator="\n")
    return lambda tmp: Path(tmp).write_bytes(gzip.compress(text.encode(), mtime=0))


def write_csv(df: pd.DataFrame, path: str | os.PathLike, exact: bool = False) -> Path:
    """Tidy CSV, no index, floats at `FLOAT_FORMAT` (`exact`: every digit, so `read_csv` gives the same
    floats back): identical runs give identical bytes (a `.gz` path is gzip-compressed, with no timestamp
    in its header)."""
    return write_atomic(path, csv_writer(df, path, exact))


def read_csv(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(path)


def human_count(n) -> str:
    """A count for people: 985 -> '985', 97440 -> '97.4K', 241400128 -> '241.4M', 4.5e9 -> '4.5G'."""
    if n is None or (isinstance(n, float) and np.isnan(n)):
        return ""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{suffix}"
    return f"{n:g}" if isinstance(n, float) else str(int(n))


def human_bytes(n) -> str:
    """Bytes for people, in binary units: 512 -> '512 B', 6711936 -> '6.4 MiB'."""
    if n is None or (isinstance(n, float) and np.isnan(n)):
        return ""
    for scale, suffix in ((2 ** 40, "TiB"), (2 ** 30, "GiB"), (2 ** 20, "MiB"), (2 ** 10, "KiB")):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {suffix}"
    return f"{int(n)} B"


def table_differences(ours: pd.DataFrame, reference: pd.DataFrame, *, rtol: float = RTOL,
                      atol: float = ATOL) -> list[str]:
    """What differs between two tables, one line each (empty: the same numbers, see above).

    Columns and row count must match; float columns agree within `rtol` / `atol` (NaN only
    where the reference has NaN); every other column must be equal.
    """
    if list(ours.columns) != list(reference.columns):
        return [f"columns differ: {list(ours.columns)} vs {list(reference.columns)}"]
    if len(ours) != len(reference):
        return [f"{len(ours)} rows vs {len(reference)}"]
    problems = []
    for col in reference.columns:
        a, b = ours[col].reset_index(drop=True), reference[col].reset_index(drop=True)
        if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
            x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
            bad = ~(np.isclose(x, y, rtol=rtol, atol=atol) | (np.isnan(x) & np.isnan(y)))
        else:
            both_missing = (a.isna() & b.isna()).to_numpy(dtype=bool)
            bad = ~both_missing & (a.astype(str) != b.astype(str)).to_numpy(dtype=bool)
        for i in np.flatnonzero(bad)[:3]:
            problems.append(f"{col} row {i}: {a.tolist()[i]!r} vs {b.tolist()[i]!r}")
        if bad.sum() > 3:
            problems.append(f"{col}: {bad.sum() - 3} more rows differ")
    return problems


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
