"""Outputs a user names are the command's own: an existing file it did not write (or that changed since it
wrote it) is replaced only with --overwrite, refused in one line before any work otherwise; and a temporary
file left by a killed run is swept once it is stale."""
import json
import os
import time

import pytest

from analysis.core.files import MANIFEST, STALE_SECONDS, write_atomic
from analysis.cost.__main__ import main as cost

ARGV = ["--model", "shvit_s1", "--resolution", "64"]


def _run(argv, capsys):
    try:
        code = cost(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def test_an_unrelated_file_is_kept_unless_overwrite_is_given(tmp_path, capsys):
    notes = tmp_path / "notes.csv"
    notes.write_text("my notes\n")
    code, err = _run(ARGV + ["--csv", str(notes)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "was not written by python -m analysis.cost" in err and "--overwrite" in err
    assert notes.read_text() == "my notes\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.csv"]
    code, _ = _run(ARGV + ["--csv", str(notes), "--overwrite"], capsys)
    assert code == 0 and notes.read_text().startswith("model,")


def test_the_command_may_replace_its_own_output_until_someone_edits_it(tmp_path, capsys):
    out = tmp_path / "cost.csv"
    assert _run(ARGV + ["--csv", str(out)], capsys)[0] == 0
    entry = json.loads((tmp_path / MANIFEST).read_text())["cost.csv"]
    assert entry["command"] == "analysis.cost" and entry["size"] == out.stat().st_size
    assert _run(ARGV + ["--csv", str(out)], capsys)[0] == 0          # its own, unchanged: replaced
    with open(out, "a") as f:
        f.write("# a note of mine\n")
    code, err = _run(ARGV + ["--csv", str(out)], capsys)
    assert code == 2 and "has changed since" in err and out.read_text().endswith("# a note of mine\n")


def test_another_commands_output_is_not_this_ones(tmp_path, capsys):
    out = tmp_path / "t.csv"
    out.write_text("x\n")
    (tmp_path / MANIFEST).write_text(json.dumps({"t.csv": {"command": "analysis.throughput", "size": 2,
                                                           "mtime_ns": out.stat().st_mtime_ns}}))
    code, err = _run(ARGV + ["--csv", str(out)], capsys)
    assert code == 2 and "was not written by python -m analysis.cost" in err and out.read_text() == "x\n"


def test_stale_temporaries_of_a_killed_run_are_swept_and_fresh_ones_kept(tmp_path):
    stale, fresh, other = (tmp_path / ".r.csv.abc123.csv", tmp_path / ".r.csv.def456.csv",
                           tmp_path / ".other.csv.abc.csv")
    for p in (stale, fresh, other):
        p.write_text("")                                   # a SIGKILLed write leaves a 0-byte file
    old = time.time() - STALE_SECONDS - 60
    for p in (stale, other):
        os.utime(p, (old, old))
    write_atomic(tmp_path / "r.csv", lambda tmp: tmp.write_text("a\n"))
    assert not stale.exists() and fresh.exists() and other.exists()   # only this output's stale leftovers
    assert (tmp_path / "r.csv").read_text() == "a\n"


@pytest.mark.parametrize("flag", ["--csv"])
def test_library_writes_outside_a_command_are_not_recorded(tmp_path, flag):
    write_atomic(tmp_path / "lib.csv", lambda tmp: tmp.write_text("a\n"))
    assert not (tmp_path / MANIFEST).exists()


def test_a_folder_held_by_one_run_refuses_a_second_and_is_free_afterwards(tmp_path, capsys):
    from analysis.ablations import main as ablations
    from analysis.core.errors import UserError
    from analysis.core.files import exclusive_folder

    with exclusive_folder(tmp_path, "busy"):
        with pytest.raises(UserError, match="busy"):
            with exclusive_folder(tmp_path, "busy"):
                pass
        with pytest.raises(SystemExit) as exc:          # the suite refuses a results folder another run holds
            ablations(["--table", "macro", "--root", str(tmp_path)])
        assert exc.value.code == 2 and "another `python -m analysis.ablations` run is writing" in capsys.readouterr().err
    with exclusive_folder(tmp_path, "busy"):
        pass
