"""Execute every notebook in `notebooks/` in place, offline, regenerating `figures/` and `results/`.

    python -m analysis.make_figures              # all notebooks, in order
    python -m analysis.make_figures --only 00 03 # notebooks whose names start with these prefixes

This is what `make figures` runs. Progress (one bar per notebook, one tick per cell) goes to stderr.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from tqdm import tqdm

from .cli import ArgumentParser
from .errors import UserError, exit_on_user_error
from .notebook import ENV_OUTPUT_ROOT

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run_notebook(path: Path, timeout: int = 1800, *, output_root: Optional[Path] = None, save: bool = True) -> float:
    """Execute `path` with the current environment's kernel; returns seconds taken.

    `output_root`: where its figures and results go (default: the repository, or $SHVIT_LAB_OUTPUT).
    `save`: write the executed notebook back to `path`.
    """
    nb = nbformat.read(path, as_version=4)
    code_cells = sum(c.cell_type == "code" for c in nb.cells)
    bar = tqdm(total=code_cells, desc=path.stem, unit="cell", file=sys.stderr, leave=True)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            on_cell_executed=lambda **_: bar.update(1))
    env = {**os.environ, ENV_OUTPUT_ROOT: str(output_root)} if output_root else None
    start = time.perf_counter()
    try:
        client.execute(env=env)
    finally:
        bar.close()
        if save:
            nbformat.write(nb, path)
    return time.perf_counter() - start


@exit_on_user_error
def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m analysis.make_figures", description=__doc__)
    parser.add_argument("--only", nargs="*", default=None, help="notebook name prefixes to run")
    parser.add_argument("--notebooks", default=str(NOTEBOOKS), help="folder of notebooks")
    args = parser.parse_args(argv)
    folder = Path(args.notebooks)
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in args.only)]
    if not paths:
        raise UserError(f"no notebooks to run in {folder}")
    total = time.perf_counter()
    for path in paths:
        try:
            seconds = run_notebook(path)
        except CellExecutionError as e:
            print(f"{path.name} failed: {e.ename}: {e.evalue}", file=sys.stderr)
            return 1
        print(f"{path.name}: {seconds:.0f} s", file=sys.stderr)
    print(f"{len(paths)} notebooks in {time.perf_counter() - total:.0f} s; figures in figures/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
