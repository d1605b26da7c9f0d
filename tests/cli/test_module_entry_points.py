"""Every `python -m analysis...` either is a command (its --help works) or says in one line that it
is a library module and exits 2; it never silently does nothing."""
import pkgutil
import runpy

import pytest

import analysis
from analysis.core.names import COMMANDS

MODULES = sorted(m.name for m in pkgutil.walk_packages(analysis.__path__, "analysis.")
                 if not m.name.rpartition(".")[2].startswith("_"))
LIBRARY = [m for m in MODULES if m.removeprefix("analysis.") not in COMMANDS]
pytestmark = pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")  # re-running imported modules


@pytest.mark.parametrize("module", LIBRARY)
def test_library_module_says_so(module, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", [module, "--model", "nope"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module(module, run_name="__main__")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "is a library module, not a command" in err


@pytest.mark.parametrize("package", ["analysis", "analysis.core", "analysis.heads", "analysis.lab"])
def test_package_says_so(package, capsys):
    with pytest.raises(SystemExit) as exc:
        runpy.run_module(f"{package}.__main__", run_name="__main__")
    assert exc.value.code == 2 and f"{package} is a library module" in capsys.readouterr().err


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(command, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", [command, "--help"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module(f"analysis.{command}", run_name="__main__")
    assert exc.value.code == 0 and "usage: python -m analysis." in capsys.readouterr().out


@pytest.mark.parametrize("module", ["analysis.cost", "analysis.throughput", "analysis.ablations"])
def test_threads_beyond_the_cpus_are_refused(module):
    """`--threads 10000` oversubscribes the machine (149 s instead of 5 s): refused at parse time, one line."""
    import os
    import subprocess
    import sys

    cpus = len(os.sched_getaffinity(0))
    done = subprocess.run([sys.executable, "-m", module, "--threads", str(cpus + 1), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"must be between 1 and the {cpus} CPUs available" in done.stderr
