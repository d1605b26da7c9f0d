"""The one pattern every `python -m analysis.<tool>` follows: parse, validate, then import and run.

A tool module defines `build_parser()` and `run(args)` and sets `main = command(build_parser, run)`.
Values are validated by the argparse types below, while parsing; `run` imports the library when it
starts, so `--help` and argument errors never wait for torch. A user error anywhere is one line on
stderr and exit code 2 (`core.errors`).

Standard library only (with `core.errors` / `core.files`, which are too).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Callable, Optional

from .core.errors import (LaunchError, UserError, deferring_notes, exit_on_user_error, launch_environment, note,
                          one_process, wait_for_rank_0)
from .core.files import OUTPUT_CLAIMS, check_inputs_kept, check_writable
from .core.names import ATTENTION_BACKENDS

__all__ = ["ArgumentParser", "command", "model_on_image", "warn_if_random", "write_figure_and_table", "positive_int", "non_negative_int", "seed", "resolution", "positive_float",
           "non_negative_float", "output_path", "output_file", "output_stem", "add_overwrite_arg", "add_resample_arg",
           "resample_pos_embed", "cpu_threads", "worker_count", "check_stem", "add_device_arg", "add_threads_arg", "add_seed_arg",
           "add_attention_backend_arg", "MODEL_HELP"]


# what every --model takes (`core.models`: timm names, or your own factory)
MODEL_HELP = ("a timm or shvitlab_* model name, or your own model as package.module:factory (its folder on "
              "PYTHONPATH) or path/to/file.py:factory; naming your own imports and runs that code")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept verbatim; every option shows its default (unless its help already names it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or not action.option_strings or action.default is None
                or action.default is argparse.SUPPRESS or isinstance(action.default, bool)):
            return text
        return f"{text} (default: %(default)s)".lstrip()


class ArgumentParser(argparse.ArgumentParser):
    """argparse with examples kept verbatim, defaults shown, and one-line errors (exit 2)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        if kwargs.get("default") is not None:  # an option that needs no words still shows its default
            kwargs.setdefault("help", "(default: %(default)s)")
        return super().add_argument(*args, **kwargs)

    def error(self, message: str):
        if os.environ.get("RANK", "0") == "0" or one_process():  # under torchrun every rank parses the same arguments
            print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        wait_for_rank_0()
        raise SystemExit(2)


def command(build_parser: Callable[[], ArgumentParser], run: Callable[[argparse.Namespace], Optional[int]]):
    """`main(argv=None) -> int` of a tool: parse with `build_parser()`, then `run(args)`; user errors
    are reported as `<prog>: error: <message>` with exit code 2."""

    def main(argv: Optional[list[str]] = None) -> int:
        parser = build_parser()
        prog = parser.prog.removeprefix("python -m ")
        try:   # before parsing: a stray RANK / WORLD_SIZE is reported at once, not left to a rank 0 that is not there
            launch_environment()
        except LaunchError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        OUTPUT_CLAIMS.__init__()
        args = parser.parse_args(argv)

        def claimed_run(args):
            OUTPUT_CLAIMS.start(prog, bool(getattr(args, "overwrite", False)))  # named outputs: ours, or --overwrite
            try:
                with deferring_notes():   # notes only once the input is checked: a bad input is one line
                    return run(args)
            finally:
                OUTPUT_CLAIMS.__init__()
        return exit_on_user_error(claimed_run, prog=prog)(args)

    return main


# ----------------------------------------------------------------------------- validators (argparse types)

def _number(kind: type, text: str, test: Callable, requirement: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
    if (kind is float and not math.isfinite(value)) or not test(value):
        raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 1, "at least 1")


def non_negative_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 0, "at least 0")


def seed(text: str) -> int:
    return _number(int, text, lambda v: 0 <= v < 2**32, "between 0 and 2**32 - 1")


def resolution(text: str) -> int:
    """An input side in px (at least 16, `core.models.input_size`'s floor)."""
    return _number(int, text, lambda v: v >= 16, "at least 16 (px)")


def positive_float(text: str) -> float:
    return _number(float, text, lambda v: v > 0, "a finite number above 0")


def non_negative_float(text: str) -> float:
    return _number(float, text, lambda v: v >= 0, "a finite number of at least 0")


def output_path(text: str) -> Path:
    """A file we can write (its folder exists and is writable; it is not a folder), claimed by the command
    (`core.files.OutputClaims`: an existing file that it did not write needs --overwrite)."""
    try:
        return OUTPUT_CLAIMS.claim(check_writable(text))
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def check_stem(text: str, option: str) -> str:
    """A figure STEM (`--figure`, `--plot`) names a file, not a folder: `runs/` or an existing folder would
    write hidden files `runs/.png` inside it."""
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        raise UserError(f"{option} {text} is a directory; give a file name stem, e.g. {Path(text) / 'figure'}")
    return text


def output_file(path: str | os.PathLike) -> Path:
    """`output_path` for an output whose name is known only in `run` (a figure stem's .png and .pdf)."""
    return OUTPUT_CLAIMS.claim(check_writable(path))


def add_overwrite_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that exist and were not written by this tool (default: refuse)")


def output_stem(text: str) -> Path:
    """STEM of a tool's STEM.png / STEM.pdf / STEM.csv (a trailing .png, .pdf or .csv is dropped):
    its folder exists and is writable, it names a file (not a folder), and no STEM.* output is a folder."""
    stem = Path(text)
    if text.endswith(("/", os.sep)) or stem.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; give a file name stem, e.g. {stem / 'maps'}")
    if stem.suffix.lower() in (".png", ".pdf", ".csv"):
        stem = stem.with_suffix("")
    try:
        for ext in (".png", ".pdf", ".csv"):
            OUTPUT_CLAIMS.claim(check_writable(f"{stem}{ext}"))
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return stem


# ----------------------------------------------------------------------------- shared arguments

def add_device_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to run (auto: cuda when available, else cpu)")


def cpu_threads(text: str) -> int:
    """A thread count from 1 to the CPUs this process may run on (more only oversubscribes them)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return _number(int, text, lambda v: 1 <= v <= available, f"between 1 and the {available} CPUs available")


def worker_count(text: str) -> int:
    """Data-loader worker processes: from 0 to the CPUs this process may run on (each is a process)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return _number(int, text, lambda v: 0 <= v <= available, f"between 0 and the {available} CPUs available")


def add_threads_arg(parser: argparse.ArgumentParser, default: Optional[int] = None, help: str = "") -> None:
    parser.add_argument("--threads", type=cpu_threads, default=default,
                        help=help or "CPU threads (default: torch's; use 1 on a shared machine)")


def add_seed_arg(parser: argparse.ArgumentParser, help: str = "seed for the random weights and inputs") -> None:
    parser.add_argument("--seed", type=seed, default=0, help=help)


def add_resample_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resample-pos-embed", action="store_true",
                        help="let a checkpoint with another position-embedding grid or patch size be resampled to "
                             "the model (timm's converter; default: refuse it)")


def resample_pos_embed(args, weights) -> bool:
    """`--resample-pos-embed`, refused where no checkpoint file is loaded (it would be ignored)."""
    given = weights if isinstance(weights, (list, tuple)) else [weights]
    files = [w for w in given if w not in ("random", "pretrained")]
    if args.resample_pos_embed and not files:
        raise UserError("--resample-pos-embed would be ignored: it applies to --weights PATH (a checkpoint file)")
    return args.resample_pos_embed


def add_attention_backend_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--attention-backend", default="auto", choices=ATTENTION_BACKENDS,
                        help="force one scaled_dot_product_attention kernel (default auto: torch's choice "
                             "for this host and device)")


# ----------------------------------------------------------------------------- shared steps of the map tools

def model_on_image(args):
    """What `attention_maps` and `gradcam` start with: (model on its device, the image's `ImageView`, the
    model's input batch of one) from `--model`, `--weights`, `--image`, `--device`, `--threads`, `--seed`."""
    from .core.images import load_image, view_image
    from .core.models import check_model_name, create_model
    from .core.runtime import resolve_device, set_threads

    check_model_name(args.model)
    check_inputs_kept({"--image": args.image, "--weights": args.weights},
                      {f"--out ({ext})": f"{args.out}{ext}" for ext in (".png", ".pdf", ".csv")})
    image = load_image(args.image)
    device = resolve_device(args.device)
    set_threads(args.threads)
    model = create_model(args.model, args.weights, seed=args.seed,
                         resample_pos_embed=resample_pos_embed(args, args.weights)).to(device)
    warn_if_random(args.weights)
    view = view_image(model, image)
    return model, view, view.input.to(device)


def warn_if_random(weights) -> None:
    """A note on stderr when (any of) `weights` is random: an untrained model's maps look like findings."""
    if "random" in ([weights] if isinstance(weights, str) else weights):
        note("note: random weights (the default): an untrained model, a null baseline, not the papers' trained "
             "models; use --weights pretrained or a checkpoint")


def write_figure_and_table(fig, table, stem) -> None:
    """STEM.png, STEM.pdf and STEM.csv, written together or not at all, each announced on stderr."""
    import matplotlib.pyplot as plt

    from .core.files import write_set
    from .core.plotting import figure_writers
    from .core.tables import csv_writer

    paths = write_set({**figure_writers(fig, stem), Path(f"{stem}.csv"): csv_writer(table, f"{stem}.csv")})
    plt.close(fig)
    for path in paths:
        print(f"wrote {path}", file=sys.stderr)
