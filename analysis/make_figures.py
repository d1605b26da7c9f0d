"""`python -m analysis.make_figures`: execute every figure notebook in place (`make figures`),
writing `figures/` and `results/` (library: `analysis.core.notebook.run_notebook`)."""
from __future__ import annotations

import sys
import time

from ._cli import ArgumentParser, command
from .core.errors import UserError


EPILOG = """examples:
  python -m analysis.make_figures                       # every notebook, offline defaults, in place
  python -m analysis.make_figures --only 03 07
  # full scale: pretrained weights on your ImageNet-val copy, written to your folder
  python -m analysis.make_figures --only 03 04 --set WEIGHTS=pretrained --set DATA_DIR=~/imagenet/val \\
      --set NUM_IMAGES=128 --output ~/runs/full
"""


def parameter(text: str) -> tuple:
    """NAME=VALUE; VALUE a Python literal (128, None, ['a', 'b']) or else a string (~ expanded)."""
    import argparse
    import ast
    import os

    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, os.path.expanduser(value)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m analysis.make_figures", description=__doc__, epilog=EPILOG)
    p.add_argument("--only", nargs="*", default=None, help="notebook name prefixes to run")
    p.add_argument("--notebooks", default=None,
                   help="folder of notebooks (default: notebooks/ of the project: $SHVIT_LAB_ROOT or the "
                        "current directory)")
    p.add_argument("--set", type=parameter, action="append", default=[], metavar="NAME=VALUE",
                   help="a parameter of the notebooks that have it (their first cell), e.g. WEIGHTS=pretrained; "
                        "repeatable")
    p.add_argument("--output", metavar="DIR", default=None,
                   help="write figures/, results/ and the executed notebooks/ under DIR instead of over the "
                        "project's committed ones")
    return p


def run(args) -> int:
    from pathlib import Path

    try:   # the notebook tools come with the `notebooks` extra (and `dev`), not with the library
        import ipykernel  # noqa: F401  (the kernel the notebooks run in)
        import nbformat
        from nbclient.exceptions import CellExecutionError

        from .core.notebook import parameter_names, run_notebook
    except ImportError as e:
        raise UserError(f"make_figures runs the notebooks, which needs {e.name}: pip install "
                        "'shvit-analysis-lab[notebooks]'") from None
    from .core.files import check_writable
    from .core.paths import project_root

    if args.only is not None and not args.only:
        raise UserError("--only needs at least one notebook name prefix (e.g. --only 03 07); without --only every "
                        "notebook runs")
    twice = sorted({name for name, _ in args.set if sum(n == name for n, _ in args.set) > 1})
    if twice:
        raise UserError(f"--set {', '.join(twice)} is given more than once; give each parameter once")
    folder = Path(args.notebooks) if args.notebooks else project_root() / "notebooks"
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in args.only)]
    if not paths:
        raise UserError(f"no notebooks to run in {folder}")
    settings = dict(args.set)
    names = {p: parameter_names(nbformat.read(p, as_version=4)) for p in paths}
    unused = sorted(set(settings) - set().union(*names.values()))
    if unused:
        raise UserError(f"no notebook run here has the parameter {', '.join(unused)}")
    output = Path(args.output).expanduser() if args.output else None
    if output is not None:
        (output / "notebooks").mkdir(parents=True, exist_ok=True)
        check_writable(output / "notebooks" / paths[0].name)
    total = time.perf_counter()
    for path in paths:
        try:
            seconds = run_notebook(path, output_root=output, parameters={k: v for k, v in settings.items()
                                                                          if k in names[path]},
                                   save_to=output / "notebooks" / path.name if output else None)
        except CellExecutionError as e:
            print(f"{path.name} failed: {e.ename}: {e.evalue}", file=sys.stderr)
            return 1
        print(f"{path.name}: {seconds:.0f} s", file=sys.stderr)
    where = output if output is not None else "the project"
    print(f"{len(paths)} notebooks in {time.perf_counter() - total:.0f} s; figures and results in {where}",
          file=sys.stderr)
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
