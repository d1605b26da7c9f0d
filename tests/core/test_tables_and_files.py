"""analysis.core.files / .tables: outputs checked before compute, never colliding, written atomically
with the user's file mode (even when interrupted by SIGTERM), byte-identical when repeated."""
import os
import subprocess
import sys

import pandas as pd
import pytest

from analysis.core.errors import UserError, exit_on_user_error
from analysis.core.files import atomic_path, check_distinct, check_sidecar, check_writable
from analysis.core.tables import human_bytes, human_count, table_differences, write_csv


def test_check_writable(tmp_path):
    assert check_writable(tmp_path / "out.csv") == tmp_path / "out.csv"
    with pytest.raises(UserError, match="does not exist"):
        check_writable(tmp_path / "nope" / "out.csv")
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(UserError, match="does not exist"):
        check_writable(tmp_path / "a_file" / "out.csv")
    with pytest.raises(UserError, match="is a directory"):
        check_writable(tmp_path)


def test_check_writable_refuses_folder_names_the_manifest_and_special_files(tmp_path):
    """issue 26: `nd/` (Path drops the slash: a file `nd` was written), the manifest's own name, and a FIFO or
    device (never replaced, even with --overwrite) are refused."""
    with pytest.raises(UserError, match="ends with '/': it names a folder"):
        check_writable(f"{tmp_path}/nd/")
    with pytest.raises(UserError, match="is the folder's record"):
        check_writable(tmp_path / ".analysis-outputs.json")
    os.mkfifo(tmp_path / "fifo")
    for special in (tmp_path / "fifo", "/dev/null"):
        with pytest.raises(UserError, match="is not a regular file"):
            check_writable(special)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


def test_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("previous\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_csv_bytes_are_reproducible(tmp_path):
    df = pd.DataFrame({"model": ["a", "b"], "value": [1 / 3, 2.0]})
    write_csv(df, tmp_path / "x.csv")
    write_csv(df.copy(), tmp_path / "y.csv")
    assert (tmp_path / "x.csv").read_bytes() == (tmp_path / "y.csv").read_bytes()
    assert pd.read_csv(tmp_path / "x.csv").value.tolist() == pytest.approx([1 / 3, 2.0], rel=1e-5)


def test_table_differences_tolerates_float_kernels_not_changed_keys():
    ref = pd.DataFrame({"model": ["a", "b"], "layer": [0, 1], "macs": [10, 20], "value": [0.993989, float("nan")]})
    assert table_differences(ref.assign(value=[0.993988, float("nan")]), ref) == []  # a 6th-decimal kernel change
    assert table_differences(ref.assign(value=[0.99, float("nan")]), ref) == ["value row 0: 0.99 vs 0.993989"]
    assert table_differences(ref.assign(value=[0.993989, 0.5]), ref) == ["value row 1: 0.5 vs nan"]
    assert table_differences(ref.assign(model=["a", "c"]), ref) == ["model row 1: 'c' vs 'b'"]
    assert table_differences(ref.assign(macs=[10, 21]), ref) == ["macs row 1: 21 vs 20"]  # counts are exact
    assert table_differences(ref.iloc[:1], ref) == ["1 rows vs 2"]
    assert table_differences(ref[["model", "layer", "value", "macs"]], ref)[0].startswith("columns differ")


def test_table_differences_survives_a_csv_round_trip(tmp_path):
    ref = pd.DataFrame({"key": ["x", "y"], "value": [1 / 3, 2e-7]})
    write_csv(ref, tmp_path / "t.csv")
    assert table_differences(pd.read_csv(tmp_path / "t.csv"), ref) == []


def test_written_files_get_the_umask_mode_or_keep_the_replaced_files_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_csv(pd.DataFrame({"a": [1]}), tmp_path / "new.csv")
        assert (tmp_path / "new.csv").stat().st_mode & 0o777 == 0o644
        existing = tmp_path / "kept.csv"
        existing.write_text("x\n")
        os.chmod(existing, 0o640)
        write_csv(pd.DataFrame({"a": [1]}), existing)
        assert existing.stat().st_mode & 0o777 == 0o640 and existing.read_text() == "a\n1\n"
    finally:
        os.umask(old)


def test_a_symlinked_output_is_written_through_its_link(tmp_path):
    target = tmp_path / "real" / "t.csv"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    write_csv(pd.DataFrame({"a": [2]}), link)
    assert link.is_symlink() and target.read_text() == "a\n2\n"


def test_outputs_of_one_run_must_not_collide(tmp_path):
    check_distinct(**{"--out": tmp_path / "a.csv", "--plot": tmp_path / "a.png", "--unused": None})
    with pytest.raises(UserError, match="--plot and --out would both write"):
        check_distinct(**{"--out": tmp_path / "a.png", "--plot": tmp_path / "sub" / ".." / "a.png"})


def test_a_sidecar_replaces_only_an_earlier_sidecar_of_the_same_command(tmp_path):
    side = tmp_path / "r.json"
    assert check_sidecar(side, "analysis.x") == side  # absent: fine
    side.write_text('{"command": "analysis.x"}')
    check_sidecar(side, "analysis.x")
    for text in ('{"command": "analysis.y"}', "not json", "[1, 2]"):
        side.write_text(text)
        with pytest.raises(UserError, match="is not a metadata file of analysis.x"):
            check_sidecar(side, "analysis.x")


SIGTERM_SCRIPT = """
import os, signal, sys
from analysis.core.errors import exit_on_user_error
from analysis.core.files import atomic_path

def run():
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_text("half")
        os.kill(os.getpid(), signal.SIGTERM)
        tmp.write_text("never")

exit_on_user_error(run, prog="t")()
"""


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_exit_143_quietly_and_remove_the_temporary_file(tmp_path, signal_name):
    target = tmp_path / "out.csv"
    script = SIGTERM_SCRIPT.replace("signal.SIGTERM", f"signal.{signal_name}")
    r = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 143 and r.stderr == "terminated\n"
    assert list(tmp_path.iterdir()) == []


def test_write_time_os_errors_are_one_line_user_errors_and_leave_nothing(tmp_path):
    """A full disk, a file-size limit or a name the file system refuses: a UserError naming the file, no
    temporary file left, the old file untouched; a name too long is caught before any work."""
    import errno

    from analysis.core.files import write_atomic, write_set

    (tmp_path / "t.csv").write_text("old\n")

    def full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(UserError, match=r"cannot write .*t\.csv: No space left on device"):
        write_atomic(tmp_path / "t.csv", full)
    with pytest.raises(UserError, match="cannot write .*a.png: No space left on device"):
        write_set({tmp_path / "a.pdf": lambda tmp: tmp.write_text("pdf"), tmp_path / "a.png": full})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"] and (tmp_path / "t.csv").read_text() == "old\n"
    with pytest.raises(UserError, match="is too long"):
        check_writable(tmp_path / ("x" * 250 + ".csv"))


def test_user_errors_are_printed_by_rank_0_only_and_the_other_ranks_wait_for_it(capsys, monkeypatch):
    """Another rank leaving first would have torchrun stop rank 0 before it prints: the others wait."""
    def fails():
        raise UserError("bad")
    waits = []
    monkeypatch.setattr("analysis.core.errors.time.sleep", waits.append)
    for name, value in (("WORLD_SIZE", "2"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
        monkeypatch.setenv(name, value)
    for rank, expected, waited in (("0", "t: error: bad\n", []), ("1", "", [60.0])):
        monkeypatch.setenv("RANK", rank)
        waits.clear()
        with pytest.raises(SystemExit) as exc:
            exit_on_user_error(fails, prog="t")()
        assert exc.value.code == 2 and capsys.readouterr().err == expected and waits == waited


@pytest.mark.parametrize("env,needle", [({"RANK": "1"}, "RANK=1 / LOCAL_RANK=0 do not fit WORLD_SIZE=1"),
                                        ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 without MASTER_ADDR and MASTER_PORT"),
                                        ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not a whole number"),
                                        ({"RANK": "\u00b2"}, "RANK='\u00b2' is not a whole number"),
                                        ({"LOCAL_RANK": "-1"}, "LOCAL_RANK='-1' is not a whole number"),
                                        ({"HF_HOME": __file__}, "environment variable HF_HOME="),
                                        ({"SHVIT_LAB_OUTPUT": __file__}, "is not a folder; point it at one")])
def test_a_bad_launch_environment_is_reported_by_the_process_itself_without_waiting(env, needle, capsys, monkeypatch):
    """A stray RANK=1 in a one-process run: one line from this process and exit 2, not silence and a 60 s wait."""
    waits = []
    monkeypatch.setattr("analysis.core.errors.time.sleep", waits.append)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exc:
        exit_on_user_error(lambda: 0, prog="t")()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and needle in err and err.count("\n") == 1 and waits == []


@pytest.mark.parametrize("n,text", [(0, "0"), (985, "985"), (97440, "97.4K"), (241400128, "241.4M"), (4.5e9, "4.5G")])
def test_human_count(n, text):
    assert human_count(n) == text


@pytest.mark.parametrize("n,text", [(512, "512 B"), (2048, "2.0 KiB"), (6711936, "6.4 MiB"), (3 * 2**30, "3.0 GiB")])
def test_human_bytes(n, text):
    assert human_bytes(n) == text


def test_a_gz_table_is_compressed_and_byte_identical_across_writes(tmp_path):
    df = pd.DataFrame({"key": ["a", "b"] * 50, "value": [0.5, 1.25] * 50})
    first = write_csv(df, tmp_path / "one.csv.gz").read_bytes()
    second = write_csv(df, tmp_path / "two.csv.gz").read_bytes()
    assert first == second and first[:2] == b"\x1f\x8b"  # gzip, no name or time in its header
    assert not table_differences(pd.read_csv(tmp_path / "one.csv.gz"), df)


def test_figure_stems_keep_their_dots(tmp_path):
    """`--out cat.v1` and `--out cat.v2` are two figure sets (cat.v1.png, cat.v2.png), not one cat.png;
    a CSV named like the other stem's figure (`--csv b.pdf --figure b.x`) is left alone."""
    import matplotlib.pyplot as plt

    from analysis.core.plotting import save_figure

    (tmp_path / "b.pdf").write_text("a table\n")
    written = []
    for stem in ("cat.v1", "cat.v2", "b.x"):
        fig = plt.figure()
        written += save_figure(fig, tmp_path / stem)
        plt.close(fig)
    assert sorted(p.name for p in written) == ["b.x.pdf", "b.x.png", "cat.v1.pdf", "cat.v1.png", "cat.v2.pdf",
                                                "cat.v2.png"]
    assert all(p.is_file() for p in written) and not (tmp_path / "cat.png").exists()
    assert (tmp_path / "b.pdf").read_text() == "a table\n"
    plt.close("all")


def test_a_set_of_outputs_appears_together_or_not_at_all(tmp_path):
    from analysis.core.files import write_set

    (tmp_path / "am.csv").write_text("old table\n")

    def fail(tmp):
        raise OSError("disk full")

    with pytest.raises(UserError, match="disk full"):
        write_set({tmp_path / "am.csv": lambda tmp: tmp.write_text("new\n"),
                   tmp_path / "am.png": lambda tmp: tmp.write_bytes(b"png"), tmp_path / "am.pdf": fail})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["am.csv"]          # no new file, no temp left
    assert (tmp_path / "am.csv").read_text() == "old table\n"                  # the old one untouched
    written = write_set({tmp_path / "am.csv": lambda tmp: tmp.write_text("new\n"),
                         tmp_path / "am.png": lambda tmp: tmp.write_bytes(b"png")})
    assert [p.name for p in written] == ["am.csv", "am.png"] and (tmp_path / "am.csv").read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["am.csv", "am.png"]
