"""Where the scorecard reads its tables: `ResultTables` finds each table a row needs (the notebooks'
`results/`, or a lab suite's `results/micro|meso/`), records which files it read (their commit is the
row's measurement commit), and draws the suite's intervals clustered by source digit."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from ..core.errors import UserError, not_a_command
from ..core.intervals import Estimate, seeded
from ..core.paths import PathLike, meso_root, micro_root, project_root
from ..core.tables import read_csv
from ..lab.cache import table_path

__all__ = ["ResultTables"]


class ResultTables:
    """Reads the tables a row needs: `results/<name>` of the output folder, else the project's; for a
    lab scale, its suite's tables (micro: `results/micro`, meso: `results/meso`, keys prefixed `meso_`).
    `read` collects the project's copy of every table read: the files whose commit measured the row
    (an output folder's copy reproduces the committed one, `notebooks/test_results_reproduce.py`)."""

    def __init__(self, results: Optional[PathLike], lab: Optional[PathLike] = None, scale: str = "full"):
        self.results = Path(results) if results else project_root() / "results"
        self.scale = scale
        self.lab = (micro_root if scale == "micro" else meso_root)(lab) if scale != "full" else None
        self.read: list[Path] = []

    def key(self, name: str) -> str:
        """The recipe key of the micro model `name` at this scale."""
        return name if self.scale == "micro" else f"{self.scale}_{name}"

    def result(self, name: str) -> pd.DataFrame:
        for path in (self.results / name, project_root() / "results" / name):
            if path.is_file():
                self.read.append(project_root() / "results" / name)
                return read_csv(path)
        raise UserError(f"the scorecard needs results/{name}: run the notebook that writes it first")

    def clusters(self, images: int) -> Optional[np.ndarray]:
        """The source digit of each of the first `images` val images of this lab suite (its `val_sources.csv`),
        for bootstraps that draw whole source digits; None where the suite records none."""
        path = self.lab / "val_sources.csv" if self.lab is not None else None
        if path is None or not path.is_file():
            return None
        self.read.append(path)
        return _read_cached(path, path.stat().st_mtime_ns).sort_values("image").source.to_numpy()[:images]

    def seeded(self, statistic, *arrays) -> Estimate:
        """`intervals.seeded` over [seeds, images, ...] arrays of this suite's val images, clustered by source digit
        where the suite records them."""
        return seeded(statistic, *arrays, clusters=self.clusters(np.shape(arrays[0])[1]))

    def lab_table(self, name: str) -> pd.DataFrame:
        path = table_path(name, self.lab)
        if not path.is_file():
            how = "--all --seeds" if self.scale == "micro" else f"--{self.scale}"
            raise UserError(f"the scorecard needs {path}: run `python -m analysis.ablations {how}` first")
        self.read.append(path)
        return _read_cached(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=16)
def _read_cached(path: Path, mtime: int) -> pd.DataFrame:
    return read_csv(path)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
