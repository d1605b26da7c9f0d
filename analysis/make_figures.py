"""`python -m analysis.make_figures`: execute every figure notebook in place (`make figures`),
writing `figures/` and `results/` (library: `analysis.core.notebook.run_notebook`)."""
from __future__ import annotations

import sys
import time

from ._cli import ArgumentParser, command
from .core.errors import UserError


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m analysis.make_figures", description=__doc__)
    p.add_argument("--only", nargs="*", default=None, help="notebook name prefixes to run")
    p.add_argument("--notebooks", default=None,
                   help="folder of notebooks (default: notebooks/ of the project: $SHVIT_LAB_ROOT or the "
                        "current directory)")
    return p


def run(args) -> int:
    from pathlib import Path

    from nbclient.exceptions import CellExecutionError

    from .core.notebook import run_notebook
    from .core.paths import project_root

    folder = Path(args.notebooks) if args.notebooks else project_root() / "notebooks"
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


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
