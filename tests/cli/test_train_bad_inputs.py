"""`python -m analysis.train`: every bad input exits 2 with one line and writes nothing (no run
folder, no checkpoint), and an existing run is never replaced without --resume or --overwrite."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.train import main
from tests.cli.own_model import own_model_rows
from tests.helpers import assert_rejected

TINY = ["--model", "shvitlab_fig2_b", "--set", "embed_dims=[16,32,48]", "--set", "depths=[1,1,1]",
        "--set", "partial_dims=[4,8,12]", "--data-resolution", "32", "--num-train", "64", "--num-val", "16",
        "--epochs", "1", "--batch-size", "32", "--quiet"]
OUT = ["--output", "{tmp}/run"]
BUILD_FAILS = ["--model", "shvitlab_fig2_b", "--set", "embed_dims=[16,32,48]"] + TINY[8:]   # fails as it is built
TABLE = [
    (["--epochs", "1"], "the following arguments are required: --model"),
    (TINY + ["--batch-size", "0"], "argument --batch-size: must be at least 1"),
    (TINY + ["--epochs", "0"], "argument --epochs: must be at least 1"),
    (TINY + ["--num-train", "-5"], "argument --num-train: must be at least 1"),
    (TINY + ["--num-val", "0"], "argument --num-val: must be at least 1"),
    (TINY + ["--data-resolution", "0"], "argument --data-resolution: must be at least 16 (px)"),
    (TINY + ["--resolution", "0"], "argument --resolution: must be at least 16 (px)"),
    (TINY + ["--data-seed", "-1"], "argument --data-seed: must be between 0 and 2**32 - 1"),
    (TINY + ["--seed", "-1"], "argument --seed: must be between 0 and 2**32 - 1"),
    (TINY + ["--workers", "-1"], "argument --workers: must be between 0 and the"),
    (TINY + ["--workers", "1000000"], "argument --workers: must be between 0 and the"),
    (TINY + ["--warmup-epochs", "-1"], "argument --warmup-epochs: must be at least 0"),
    (TINY + ["--stop-after", "0"], "argument --stop-after: must be at least 1"),
    (TINY + ["--lr", "nan"], "argument --lr: must be a finite number above 0"),
    (TINY + ["--lr", "0"], "argument --lr: must be a finite number above 0"),
    (TINY + ["--lr=-1e-3"], "argument --lr: must be a finite number above 0"),
    (TINY + ["--lr", "fast"], "invalid float value: 'fast'"),
    (TINY + ["--weight-decay", "inf"], "argument --weight-decay: must be a finite number of at least 0"),
    (TINY + ["--label-smoothing", "-0.1"], "argument --label-smoothing: must be a finite number of at least 0"),
    (TINY + ["--opt", "nope"], "unknown --opt 'nope'"),
    (TINY + ["--sched", "nope"], "unknown --sched 'nope'"),
    (TINY + ["--model", "shvitlab_nope"], "unknown model 'shvitlab_nope'"),
    (TINY + ["--model-kwargs", "{{nope"], "--model-kwargs is not valid JSON"),
    (TINY + ["--model-kwargs", "[1, 2]"], "--model-kwargs must be a JSON object"),
    (TINY + ["--set", "depths"], "--set expects key=value, got 'depths'"),
    (TINY + ["--set", "=3"], "--set expects key=value"),
    (TINY + ["--set", "no_such_knob=3"], "bad model override for shvitlab_fig2_b"),
    (TINY + ["--data", "{missing}"], "apply to --data cluttered-digits only"),
    (["--model", "shvitlab_fig2_b", "--data", "{missing}", "--quiet"], "does not exist"),
    (["--model", "shvitlab_fig2_b", "--data", "{flat}", "--quiet"], "has no train/ subfolder"),
    (TINY + ["--resume", "{missing}"], "checkpoint not found"),
    (TINY + ["--resume", "{text_pth}"], "is not a readable checkpoint"),
    (TINY + ["--output", "{a_file}/run"], "cannot create output folder"),
    (TINY + ["--device", "tpu"], "argument --device: invalid choice"),
    (TINY + ["--lr", "1e9"], "training diverged"),
    (TINY + ["--label-smoothing", "5"] + OUT, "--label-smoothing 5 is out of range: a probability in [0, 1)"),
    (TINY + ["--set", "drop_rate=2.0"] + OUT, "--set drop_rate=2.0 is out of range"),
    (TINY + ["--set", "drop_path_rate=-0.1"] + OUT, "--set drop_path_rate=-0.1 is out of range"),
    (TINY + ["--sched", "plateau"] + OUT, "--sched plateau steps on a validation metric"),
    # issue 26: options that would be ignored, conflicting overrides
    (TINY + ["--device", "cpu", "--sync-bn"] + OUT, "--sync-bn would be ignored"),
    (TINY + ["--stop-after", "1"] + OUT, "--stop-after 1 would be ignored: the run has 1 epochs"),
    (TINY + ["--epochs", "3", "--stop-after", "5"] + OUT, "--stop-after 5 would be ignored"),
    (TINY + ["--device", "cpu", "--no-amp"] + OUT, "--no-amp would be ignored"),
    (TINY + ["--set", "depths=[1,2,2]"] + OUT, "--set depths=... is given more than once"),
    (TINY + ["--model-kwargs", '{{"depths": [1, 1, 1]}}'] + OUT, "--set depths and --model-kwargs both give depths"),
    (BUILD_FAILS + OUT, "bad model override for shvitlab_fig2_b"),
]
TABLE += own_model_rows(TINY[8:] + OUT, weights=False)   # issue 28: your own model that cannot be loaded or built


@pytest.mark.parametrize("argv,needle", TABLE, ids=[" ".join(a[-2:]) for a, _ in TABLE])
def test_bad_input(argv, needle, bad, tmp_path, capsys):
    assert_rejected(main, [a.format(tmp=tmp_path, **bad) for a in argv], needle, capsys, tmp_path)


@pytest.mark.parametrize("output", ["run", "a/b/run"])
def test_a_run_refused_when_its_model_is_built_leaves_no_output_folder(output, tmp_path, capsys):
    """A --set value that fails only when the model is built (after --output was made) leaves no empty
    folder behind, nor its missing parents (issue 26); an existing folder is kept."""
    argv = BUILD_FAILS + ["--output", str(tmp_path / output)]
    assert_rejected(main, argv, "bad model override for shvitlab_fig2_b", capsys, tmp_path)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    assert_rejected(main, argv[:-1] + [str(tmp_path / "kept")], "bad model override", capsys, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]


def test_an_existing_run_is_kept_unless_resumed_or_overwritten(tmp_path, capsys):
    argv = TINY + ["--output", str(tmp_path / "run")]
    assert main(argv) == 0
    capsys.readouterr()
    err = assert_rejected(main, argv, "already holds a training run (last.pth)", capsys, tmp_path)
    assert "--resume" in err and "--overwrite" in err
    before = (tmp_path / "run" / "last.pth").stat().st_mtime_ns
    assert main(argv + ["--overwrite"]) == 0
    assert (tmp_path / "run" / "last.pth").stat().st_mtime_ns != before


@pytest.mark.slow
def test_a_user_error_under_torchrun_is_one_line_from_rank_0(tmp_path):
    """The launcher fails (and prints its own report); our processes print the reason once, no traceback."""
    torchrun = Path(sys.executable).with_name("torchrun")
    r = subprocess.run([str(torchrun), "--nproc_per_node=2", "-m", "analysis.train", "--model", "shvitlab_fig2_b",
                        "--opt", "nope", "--quiet"], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert r.returncode != 0
    assert r.stderr.count("analysis.train: error: unknown --opt 'nope'") == 1
    assert "/analysis/" not in "".join(line for line in r.stderr.splitlines() if line.lstrip().startswith("File "))


def test_a_second_run_into_a_folder_being_written_is_refused(tmp_path, capsys):
    """While one run holds --output (its folder lock), another is refused at once with one line, and the
    folder is left as the first run has it; once released, the same command trains."""
    import fcntl

    run = tmp_path / "run"
    run.mkdir()
    fd = os.open(run, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)          # what a running `train` holds
        assert_rejected(main, TINY + ["--output", str(run)], "another training run is writing", capsys, tmp_path)
    finally:
        os.close(fd)
    assert main(TINY + ["--output", str(run)]) == 0
    assert sorted(p.name for p in run.iterdir()) == ["last.pth", "summary.json"]


def test_a_resumed_checkpoint_is_validated_field_by_field(tmp_path, capsys):
    """Another optimizer, an epoch beyond --epochs or negative, a bool step, an empty optimizer state and a
    malformed history are one-line errors before any work (they were tracebacks or silently accepted)."""
    import torch

    assert main(TINY + ["--output", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    good = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    cases = [({}, ["--opt", "sgd"], "was trained with --opt 'adamw'"),
             ({"epoch": 10 ** 9}, [], "is at epoch 1000000000"),
             ({"epoch": -1}, [], "is at epoch -1"),
             ({"step": True}, [], "step True"),
             ({"optimizer": {}}, [], "has no usable optimizer state"),
             ({"metrics": {"history": [{"loss": 1}]}}, [], "malformed training history")]
    for change, extra, needle in cases:
        path = tmp_path / "in" / "changed.pth"
        path.parent.mkdir(exist_ok=True)
        torch.save({**good, **change}, path)
        argv = TINY + ["--epochs", "2", "--resume", str(path), "--output", str(tmp_path / "next")] + extra
        assert_rejected(main, argv, needle, capsys, tmp_path)
        assert not (tmp_path / "next").exists()
