"""The CLI contract as a property (Hypothesis): for argument vectors drawn from valid and adversarial values
and for generated file contents, every command either exits 0 with its named outputs complete, or exits 2
with one line on stderr and no file created or changed; stopped by SIGINT / SIGTERM at a random moment, it
exits 130 / 143 with nothing partial left behind.

Values come from per-option pools (numbers at and beyond their bounds, non-numbers, paths that exist,
are folders, are someone else's file, hold random bytes, ...); the cheap settings in each pool keep a valid
run to a few seconds, so the default profile (about 150 cases) fits CI's three minutes. `HYPOTHESIS_PROFILE=
thorough` runs ten times as many (marked slow)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from analysis.core.paths import project_root
from tests.helpers import snapshot

settings.register_profile("ci", max_examples=14, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck))
settings.register_profile("thorough", max_examples=140, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

NUMBERS = ["-1", "0", "1", "2", "3", "1.5", "1e3", "nan", "inf", "-inf", "abc", "", "99999999999", "\u221e"]
SMALL = ["1", "2"]


def _inputs(root: Path, weight_bytes: bytes, json_text: str) -> dict:
    """The files a case may point at, under `root/in` (generated contents where Hypothesis chose them)."""
    src = root / "in"
    (src / "flat" / "a").mkdir(parents=True)
    (src / "flat" / "b").mkdir()
    for i, cls in enumerate(("a", "b")):
        Image.fromarray(np.full((40, 40, 3), 60 * i + 30, np.uint8)).save(src / "flat" / cls / f"im{i}.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(src / "img.png")
    (src / "empty").mkdir()
    (src / "notes.csv").write_text("a note\n")
    (src / "weights.pth").write_bytes(weight_bytes)
    (src / "machine.json").write_text(json_text)
    (root / "out").mkdir()
    return {"flat": src / "flat", "img": src / "img.png", "empty": src / "empty", "notes": src / "notes.csv",
            "weights": src / "weights.pth", "machine": src / "machine.json", "out": root / "out"}


def _paths(kind: str):
    """Path tokens of one kind; `{name}` is filled from `_inputs`."""
    outputs = ["{out}/r.csv", "{out}/r.v1", "{out}", "{out}/missing/r.csv", "{notes}", "{img}", "{weights}", ""]
    pools = {"out": outputs, "stem": [p.removesuffix(".csv") for p in outputs],
             "image": ["{img}", "{flat}", "{notes}", "{weights}", "{out}/missing.png", ""],
             "data": ["{flat}", "{empty}", "{img}", "{out}/missing"],
             "weights": ["random", "pretrained", "{weights}", "{notes}", "{flat}", "{out}/missing.pth"],
             "machine": ["{machine}", "{flat}", "{notes}", "{out}/missing.json", "/dev/null"]}
    return st.sampled_from(pools[kind])


def _value(pool):
    return pool if isinstance(pool, st.SearchStrategy) else st.sampled_from(pool)


# Per command: (main, required options, optional options): an option's pool lists the values drawn for it
# (None: a flag). Options in BOUNDS keep a valid run short (epochs, images, the notebooks run) and are never
# left out; any other required option now and then is, to exercise argparse's own refusal.
BOUNDS = {"--epochs", "--num-train", "--num-val", "--data-resolution", "--batch-size", "--num-images", "--window",
          "--warmup", "--resolution", "--only", "--output", "--root", "--predict-only", "--machine"}
COMMANDS = {
    "cost": ("analysis.cost.__main__", {"--model": ["shvit_s1", "nope", "deit_tiny_patch16_224"]},
             {"--resolution": ["64", "32", "15", "225", "abc", "20000"], "--batch-size": SMALL + NUMBERS,
              "--by": ["stage", "module", "operator", "layer"], "--depth": ["1", "-1"], "--latency": None,
              "--repeats": SMALL + ["0"], "--warmup": ["0", "-3"], "--threads": ["1", "0", "100000"],
              "--csv": _paths("out"), "--json": None, "--overwrite": None, "--seed": ["0", "-1", str(2**32)]}),
    "breakdown": ("analysis.breakdown", {"--model": ["shvit_s1", "nope"], "--resolution": ["64", "15", "abc"]},
                  {"--batch-size": SMALL + NUMBERS, "--repeats": ["1", "0"],
                   "--csv": _paths("out"), "--figure": _paths("stem"), "--overwrite": None,
                   "--threads": ["1", "0"], "--device": ["cpu", "tpu"]}),
    "roofline": ("analysis.roofline", {"--model": ["shvit_s1", "nope"], "--predict-only": None,
                                       "--machine": _paths("machine")},
                 {"--resolution": ["64", "15"], "--batch-size": SMALL + ["0", "nan"], "--by": ["stage", "op", "x"],
                  "--csv": _paths("out"), "--figure": _paths("stem"), "--save-machine": _paths("out"),
                  "--repeats": ["1"], "--depth": ["1"], "--overwrite": None, "--flush-denormal": None}),
    "throughput": ("analysis.throughput", {"--model": ["shvit_s1", "nope"], "--window": ["0.05", "0", "nan"],
                                           "--warmup": ["0", "-1"], "--resolution": ["64", "15"]},
                   {"--batch-size": SMALL + NUMBERS, "--threads": ["1", "0", "100000"], "--csv": _paths("out"),
                    "--runtime": ["cpu", "gpu"], "--json": None, "--overwrite": None}),
    "head_similarity": ("analysis.head_similarity", {"--model": ["deit_tiny_patch16_224", "nope", "resnet18"],
                                                     "--out": _paths("out"), "--num-images": ["2", "0", "-1", "x"]},
                        {"--weights": _paths("weights"), "--data": _paths("data"), "--batch-size": SMALL + NUMBERS,
                         "--metrics": ["paper", "all", "nope", ""], "--plot": _paths("stem"), "--overwrite": None,
                         "--amp": ["none", "fp8"], "--resample-pos-embed": None}),
    "head_ablation": ("analysis.head_ablation", {"--model": ["deit_tiny_patch16_224", "nope"],
                                                 "--data": _paths("data"), "--out": _paths("out")},
                      {"--weights": _paths("weights"), "--num-images": ["2", "0"], "--batch-size": SMALL + NUMBERS,
                       "--modes": ["remove1", "leave1", "remove1,remove1", "drop"], "--layer": ["blocks.0.attn", "x"],
                       "--overwrite": None, "--resample-pos-embed": None}),
    "attention_maps": ("analysis.attention_maps", {"--model": ["deit_tiny_patch16_224", "nope"],
                                                   "--image": _paths("image"), "--out": _paths("stem")},
                       {"--weights": _paths("weights"), "--layer": ["0", "-1", "99", "blocks.0.attn", "x"],
                        "--query": ["1,1", "-1,5", "a,b", "1"], "--rollout": None, "--overwrite": None}),
    "gradcam": ("analysis.gradcam", {"--model": ["shvit_s1", "nope"], "--image": _paths("image"),
                                     "--out": _paths("stem")},
                {"--weights": _paths("weights"), "--target": ["0", "-1", "5000", "x"],
                 "--method": ["gradcam", "gradcam++", "rollout", "lime"], "--overwrite": None}),
    "train": ("analysis.train", {"--model": ["shvitlab_fig2_b", "nope"], "--epochs": ["1", "0", "x"],
                                 "--num-train": ["64", "0"], "--num-val": ["32", "-1"], "--data-resolution": ["48", "8"],
                                 "--batch-size": ["32", "0", "99999999999"]},
              {"--lr": ["1e-3", "0", "nan", "-1"], "--label-smoothing": ["0.1", "5", "-1"],
               "--sched": ["cosine", "plateau", "nope"], "--opt": ["adamw", "nope"], "--output": _paths("out"),
               "--resume": _paths("weights"), "--set": ["embed_dims=[16,32,48]", "nope=1", "embed_dims=x"],
               "--warmup-epochs": ["0", "-1"], "--quiet": None}),
    "ablations": ("analysis.ablations", {"--root": _paths("out")},
                  {"--list": None, "--train": ["nope", ""], "--table": ["nope"], "--threads": ["0", "100000"],
                   "--rounds": ["9", "x"], "--refresh": None}),
    "make_figures": ("analysis.make_figures", {"--only": ["99", "zz"], "--output": ["{out}/figs"]},
                     {"--set": ["NOPE=1", "x", "=1"], "--notebooks": _paths("data")}),
}


@st.composite
def cases(draw, name: str):
    """(argv template, generated checkpoint bytes, generated machine JSON) for command `name`."""
    _, required, optional = COMMANDS[name]
    argv = []
    for flag, pool in required.items():
        if flag not in BOUNDS and draw(st.integers(0, 9)) == 0:   # now and then a required option is left out
            continue
        argv += [flag] if pool is None else [flag, draw(_value(pool))]
    for flag in draw(st.lists(st.sampled_from(sorted(optional)), max_size=3, unique=True)):
        pool = optional[flag]
        argv += [flag] if pool is None else [flag, draw(_value(pool))]
    weights = draw(st.one_of(st.binary(max_size=256), st.sampled_from([b"", b"PK\x03\x04" + b"\0" * 60])))
    machine = draw(st.one_of(st.just('{"name": "m", "threads": 1}'), st.text(max_size=60),
                             st.builds(json.dumps, st.dictionaries(st.sampled_from(["name", "threads", "device",
                                                                                     "peak_flops", "bandwidth"]),
                                                                   st.one_of(st.integers(-5, 5), st.floats(),
                                                                             st.text(max_size=5), st.booleans()),
                                                                   max_size=5))))
    return argv, weights, machine


def _run(module: str, argv: list[str]) -> tuple[int, str]:
    main = __import__(module, fromlist=["main"]).main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    return code, err.getvalue()


def _named_outputs(argv: list[str], name: str) -> list[Path]:
    """The files a successful run must have written: the named outputs of its argv."""
    out = []
    for flag, value in zip(argv, argv[1:]):
        if flag in ("--csv", "--save-machine") or (flag == "--out" and name in ("head_similarity", "head_ablation")):
            out.append(Path(value))
        elif flag in ("--figure", "--plot"):
            stem = value[:-4] if value.endswith((".png", ".pdf")) else value
            out += [Path(f"{stem}.png"), Path(f"{stem}.pdf")]
        elif flag == "--out":
            out += [Path(f"{value}{ext}") for ext in (".png", ".pdf", ".csv")]
    return out


GENERATED: dict[str, int] = {}


def check_contract(name: str, case) -> None:
    template, weights, machine = case
    module = COMMANDS[name][0]
    with tempfile.TemporaryDirectory() as tmp:
        files = _inputs(Path(tmp), weights, machine)
        argv = [a.format(**files) for a in template]
        before = snapshot(tmp)
        code, err = _run(module, argv)
        GENERATED[name] = GENERATED.get(name, 0) + 1
        lines = [line for line in err.splitlines() if line.strip()]
        if code == 0:
            for path in _named_outputs(argv, name):
                assert path.is_file() and path.stat().st_size > 0, f"{argv}: exit 0 without {path}"
        else:
            assert code == 2, f"{argv}: exit {code}\n{err[-3000:]}"
            errors = [line for line in lines if ": error" in line]
            assert len(errors) == 1 and "Traceback" not in err, f"{argv}: not one error line\n{err[-3000:]}"
            assert snapshot(tmp) == before, f"{argv}: a rejected run wrote or changed files"


def _property(name: str):
    @given(case=cases(name))
    def test(case):
        check_contract(name, case)
    test.__name__ = f"test_{name}_keeps_the_contract"
    return test


for _name in COMMANDS:
    globals()[f"test_{_name}_keeps_the_contract"] = _property(_name)


def test_report_how_many_cases_were_generated(capsys):
    """Runs last in this module (pytest keeps file order): the count per command, in the test log."""
    with capsys.disabled():
        print(f"\nproperty cases per command: {GENERATED} (total {sum(GENERATED.values())})")
    assert not GENERATED or sum(GENERATED.values()) >= len(COMMANDS)


@settings(max_examples=4)   # from 0.3 s: the interpreter starts and the command installs its handlers in ~0.1 s
@given(delay=st.floats(0.3, 6.0), signum=st.sampled_from([signal.SIGINT, signal.SIGTERM]))
def test_a_signal_at_a_random_moment_leaves_nothing_partial(delay, signum):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "c.csv"
        proc = subprocess.Popen([sys.executable, "-m", "analysis.cost", "--model", "shvit_s1", "--latency",
                                 "--repeats", "30", "--csv", str(out)], cwd=project_root(), stderr=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, text=True)
        time.sleep(delay)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
        # a signal after the command's work, while the interpreter exits, ends it with the default disposition:
        # a shell reports that death as 128 + N, the same 130 / 143 the command exits with
        code = 128 - proc.returncode if proc.returncode < 0 else proc.returncode
        assert code in (0, {signal.SIGINT: 130, signal.SIGTERM: 143}[signum]), err[-2000:]
        assert "Traceback" not in err, err[-2000:]
        assert not [p.name for p in Path(tmp).iterdir() if p.name.startswith(".c.csv.")]   # no temporary file
        if code == 0 or out.exists():               # finished (or stopped once done): a complete output
            assert out.read_text().startswith("model,") and out.read_text().count("\n") > 1
    shutil.rmtree(tmp, ignore_errors=True)
