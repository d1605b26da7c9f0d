"""Notebooks: the setup every figure notebook starts with, and running them headless.

Every notebook starts with `paths = notebook.setup(OUTPUT_ROOT)`: figure style, output folders
(`core.paths`), one-line user errors.

Timings are measurements of a machine, not functions of the code: a notebook stores each
measured table in `results/` and reuses it on the next run unless told to re-measure
(`REMEASURE = True` in its parameters cell), written at full precision so that what is derived from it
is the same whether it was just measured or read back. Deterministic tables (MACs, bytes, similarities of
seeded models) are recomputed every run. A notebook is saved without what changes from run to run on its own
(execution timestamps, the kernel's version details), so `make figures` on an unchanged checkout changes no file.
"""
from __future__ import annotations

import ast
import contextlib
import copy
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import nbformat
import pandas as pd
from nbclient import NotebookClient
from tqdm import tqdm

from shvit.weights import CheckpointError

from .errors import UserError, interrupted_by, not_a_command, received_signals, recording_interrupts
from .files import write_atomic
from .paths import ENV_OUTPUT_ROOT, output_root, project_root
from .plotting import use_style
from .tables import read_csv, write_csv

__all__ = ["setup", "OutputPaths", "run_notebook", "parameter_names", "inject_parameters"]


@dataclass(frozen=True)
class OutputPaths:
    figures: Path
    results: Path

    def measured(self, name: str, measure: Callable[[], pd.DataFrame], remeasure: bool = False) -> pd.DataFrame:
        """The table `results/<name>`: measured now if asked or absent, else read back.

        When outputs go elsewhere (tests), the project's committed measurement is reused too. A new measurement
        is written at full precision and read back, so this run and later ones derive from the same numbers.
        """
        target = self.results / name
        if not remeasure:
            for candidate in (target, project_root() / "results" / name):
                if candidate.is_file():
                    return read_csv(candidate)
        write_csv(measure(), target, exact=True)
        return read_csv(target)

    def measured_file(self, name: str, measure: Callable[[Path], None], remeasure: bool = False) -> Path:
        """The file `results/<name>` (a measurement kept whole, e.g. a calibrated machine's JSON), found as
        `measured` finds a table, or written by `measure(path)` now if asked or absent."""
        target = self.results / name
        if not remeasure:
            for candidate in (target, project_root() / "results" / name):
                if candidate.is_file():
                    return candidate
        measure(target)
        return target


def _one_line_user_errors(shell, etype, value, tb, tb_offset=None):
    """A user error shows as its one line: published as the cell's error output (IPython leaves custom
    exceptions unpublished), so papermill's `PapermillExecutionError` and nbclient's
    `CellExecutionError` print it too."""
    line = f"{etype.__name__}: {value}"
    show = getattr(shell, "_showtraceback", None)  # ipykernel: publishes the error (ename, evalue, traceback)
    if show is not None:
        show(etype, value, [line])
    else:
        print(line, file=sys.stderr)
    return [line]


def setup(root: Optional[str | os.PathLike] = None) -> OutputPaths:
    """Apply the shared figure style, make `figures/` and `results/` under `core.paths.output_root(root)`,
    and show user errors as one line."""
    use_style()
    out = output_root(root)
    paths = OutputPaths(out / "figures", out / "results")
    paths.figures.mkdir(parents=True, exist_ok=True)
    paths.results.mkdir(parents=True, exist_ok=True)
    try:
        shell = get_ipython()  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        shell = None
    if shell is not None:
        shell.set_custom_exc((UserError, CheckpointError), _one_line_user_errors)
    return paths


def _caused_by_interrupt(error: BaseException) -> bool:
    while error is not None:
        if isinstance(error, KeyboardInterrupt):
            return True
        error = error.__context__
    return False


def parameter_names(nb) -> set[str]:
    """The names the notebook's `parameters` cell assigns (what papermill's `-p` can set)."""
    names = set()
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign):
                    names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def inject_parameters(nb, parameters: dict) -> None:
    """Papermill's convention: a cell tagged `injected-parameters` right after the `parameters` cell,
    assigning the given values (their `repr`) to the names the parameters cell defines."""
    unknown = sorted(set(parameters) - parameter_names(nb))
    if unknown:
        raise UserError(f"the notebook has no parameter {', '.join(unknown)}; its parameters: "
                        f"{', '.join(sorted(parameter_names(nb))) or '(none)'}")
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])) + 1
    source = "# Injected parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    nb.cells.insert(at, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))


def _without_volatile_metadata(nb, metadata: dict) -> None:
    """Leave out what a run changes without the code changing: each cell's execution timestamps (written by
    earlier runs) and the `language_info` the kernel reports (its Python version); the notebook gets back
    `metadata`, its own as read. Outputs, execution counts and cell ids stay."""
    nb.metadata = metadata
    for cell in nb.cells:
        cell.metadata.pop("execution", None)


def _drop_injected_parameters(nb) -> None:
    """Remove the `injected-parameters` cell and number the executions as a run without it would have (1, 2, ...
    over the code cells), so that the next plain run saves the same counts."""
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    executed = [c for c in nb.cells if c.cell_type == "code" and c.execution_count is not None]
    for count, cell in enumerate(executed, 1):
        cell.execution_count = count
        for output in cell.outputs:
            if output.get("output_type") == "execute_result":
                output["execution_count"] = count


@contextlib.contextmanager
def _loop_signals_recorded():
    """While nbclient executes, it handles SIGINT / SIGTERM on its event loop (to shut the kernel down), in
    place of this process's handlers: wrap the handlers it adds so that the signal is also recorded
    (`core.errors.interrupted_by`), and the run still exits 130 / 143 once the kernel is down."""
    from jupyter_core.utils import ensure_event_loop

    loop = ensure_event_loop()
    add = loop.add_signal_handler

    def recording(signum, callback, *args):
        def handler():
            received_signals.append(signum)
            callback(*args)
        return add(signum, handler)
    loop.add_signal_handler = recording
    try:
        yield
    finally:
        del loop.add_signal_handler    # the loop's own method again
        if interrupted_by() is not None:  # nbclient's tasks of the stopped kernel fail quietly, not at exit
            loop.set_exception_handler(lambda loop, context: None)


def run_notebook(path: Path, timeout: int = 1800, *, output_root: Optional[Path] = None, save: bool = True,
                 parameters: Optional[dict] = None, save_to: Optional[Path] = None) -> float:
    """Execute `path` with the current environment's kernel; returns seconds taken.

    `output_root`: where its figures and results go (default: the project, or $SHVIT_LAB_OUTPUT).
    `parameters`: values for names of its `parameters` cell (`inject_parameters`).
    `save`: write the executed notebook to `save_to` (default: back to `path`), atomically and only when
    every cell ran (a failing cell or an interrupt leaves the notebook as it was). Written back over `path`,
    it keeps its own parameters: the injected cell is left out, so that a one-off `REMEASURE=True` does not
    become the notebook's setting for every later run. Saved without run-dependent metadata
    (`_without_volatile_metadata`): a second run of an unchanged notebook writes the same bytes.
    """
    nb = nbformat.read(path, as_version=4)
    metadata = copy.deepcopy(nb.metadata)
    if parameters:
        inject_parameters(nb, parameters)
    code_cells = sum(c.cell_type == "code" for c in nb.cells)
    bar = tqdm(total=code_cells, desc=path.stem, unit="cell", file=sys.stderr, leave=True)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}},
                            on_cell_executed=lambda **_: bar.update(1))
    env = {**os.environ, **({ENV_OUTPUT_ROOT: str(output_root)} if output_root else {})}
    start = time.perf_counter()
    try:
        with recording_interrupts(), _loop_signals_recorded():
            # the kernel's own log (its ZMQ transport notes; a traceback when it is stopped mid-message) stays out
            # of the command's stderr: what cells print and raise reaches the notebook through the kernel protocol
            client.execute(env=env, stderr=subprocess.DEVNULL)
    except Exception as e:
        # Ctrl-C or SIGTERM to the process group also kills the kernel: its death (DeadKernelError) or jupyter
        # client's cleanup error is then this interrupt, and exits 130 / 143 as one
        stopped = interrupted_by() or (KeyboardInterrupt if _caused_by_interrupt(e) else None)
        if stopped is not None:
            raise stopped() from None
        raise
    finally:
        bar.close()
    if save:
        _without_volatile_metadata(nb, metadata)
        if save_to is None or Path(save_to).resolve() == Path(path).resolve():
            _drop_injected_parameters(nb)
        write_atomic(save_to or path, lambda tmp: nbformat.write(nb, tmp))
    return time.perf_counter() - start


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
