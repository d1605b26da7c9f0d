"""`make_figures` stopped by a signal to its process group (Ctrl-C in a terminal, a job scheduler's SIGTERM):
the kernel dies with it, and the command still exits 130 / 143 with one line, leaving the notebook as it was."""
import os
import signal
import subprocess
import sys
import time

import pytest

from analysis.core.paths import project_root


@pytest.mark.slow
@pytest.mark.parametrize("signum,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_to_the_process_group_exits_with_its_code_and_one_line(tmp_path, signum, code, word):
    notebook = project_root() / "notebooks" / "00_shvit_variants.ipynb"
    before = notebook.read_bytes()
    proc = subprocess.Popen([sys.executable, "-m", "analysis.make_figures", "--only", "00", "--output", str(tmp_path)],
                            cwd=project_root(), stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not (tmp_path / "figures").is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)   # the kernel makes figures/ in the notebook's first cell: it is up and running cells
    assert proc.poll() is None, "make_figures ended before it could be interrupted"
    time.sleep(1)
    os.killpg(proc.pid, signum)
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip() and "cell/s" not in line and "|" not in line]
    assert proc.returncode == code, err[-2000:]
    assert lines[-1] == word and not any("Traceback" in line for line in lines), err[-2000:]
    assert notebook.read_bytes() == before
    assert not (tmp_path / "notebooks" / "00_shvit_variants.ipynb").exists()
