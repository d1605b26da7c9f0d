"""Everything issue 30 asks of a lent GPU, in one command of about 6 minutes, written to `results/gpu/<device>/`:

- `cuda_tests.txt`: the `gpu`-marked tests (`pytest -m gpu` on the modules that hold them), their summary lines
  and exit code;
- `throughput.csv`: SHViT S1-S4 at batch 256 under AMP (fp16), at the paper's resolutions (S4 at 256 px), as
  `analysis.cost.throughput.measure_throughput` times them, in `TIMING_ROUNDS` interleaved rounds: images/s (the
  geometric mean of the rounds' medians) with its 95% interval over rounds (t on logs), and the ratio to the A100
  figure of the paper (`shvit_table2.gpu_img_s`: 33,489 / 20,522 / 14,283 img/s for S1 / S3 / S4);
- `breakdown.csv`: the runtime breakdown (`analysis.cost.breakdown.breakdown_table`) of DeiT-T, Swin-T,
  EfficientViT-M4 and SHViT-S4 in notebook 06's setting (EfficientViT Fig. 2's explicit attention path, BN
  folded, batch 16, native resolutions, 3 profiled passes), timed by the CUDA kernels each op launched;
- `predictor_machine.json`, `predictor.csv`, `predictor_summary.json`: the frozen predictor calibrated on this
  device (`calibrate("cuda")`, CUDA events) and scored on `PREDICTOR_HELD_OUT_MODELS_2` at batch 16 as
  `benchmarks/latency_predictor.py` scores it on the CPU;
- `provenance.json`: device, driver, CUDA, torch, timm, python, date (UTC), host CPU, commit, command.

On the lent machine (its own `python3` holds torch, timm, pandas, scipy, seaborn and tqdm; the repository's .venv
is too large to carry, and fvcore / captum, which only some tests import, may be absent there):

    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_evidence.py --out $OUT/gpu        # timeout_s 540: ~6 min, 7 files

then commit the files that come back as `results/gpu/<slug>/` (the slug is printed at the end).

(or plain `.venv/bin/python benchmarks/gpu_evidence.py` on a GPU host with the project's venv, `make venv`).
Figures 01 and 06 (and 09, once wired) draw a GPU panel for every folder under results/gpu/ (`core.gpu_evidence`).
A dry run on the CPU, every file with the same columns, in about a minute:

    .venv/bin/python benchmarks/gpu_evidence.py --device cpu --quick --skip-tests --out /tmp/gpu-dry-run
"""
import argparse
import datetime
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import timm
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # `python3 benchmarks/gpu_evidence.py` from a plain copy of the tree

from analysis.core.errors import UserError, exit_on_user_error  # noqa: E402
from analysis.core.files import write_atomic, write_json  # noqa: E402
from analysis.core.gpu_evidence import device_slug  # noqa: E402
from analysis.core.intervals import log_ratio_interval  # noqa: E402
from analysis.core.models import create_model_at  # noqa: E402
from analysis.core.names import PREDICTOR_HELD_OUT_MODELS_2  # noqa: E402
from analysis.core.reference import load_reference  # noqa: E402
from analysis.core.runtime import cpu_name, resolve_device  # noqa: E402
from analysis.core.tables import write_csv  # noqa: E402
from analysis.cost.breakdown import PAPER_MODELS, breakdown_table  # noqa: E402
from analysis.cost.calibration import calibrate  # noqa: E402
from analysis.cost.predictor import model_predictor, predictor_stages, predictor_summary  # noqa: E402
from analysis.cost.roofline import measure_stage_latency  # noqa: E402
from analysis.cost.throughput import measure_throughput  # noqa: E402
from analysis.cost.timing import TIMING_ROUNDS  # noqa: E402

SHVIT = ("shvit_s1", "shvit_s2", "shvit_s3", "shvit_s4")
BUDGET_S = {"tests": 90, "throughput": 100, "breakdown": 40, "predictor": 180}   # H100 estimates, none measured
FULL = {"models": None, "rounds": TIMING_ROUNDS, "throughput_batch": 256, "warmup_s": 0.3, "window_s": 1.0,
        "breakdown_batch": 16, "breakdown_repeats": 3, "predictor_batch": 16, "repeats": 10, "calibration": {}}
QUICK = {"models": 2, "rounds": 2, "throughput_batch": 4, "warmup_s": 0.0, "window_s": 0.05,
         "breakdown_batch": 4, "breakdown_repeats": 1, "predictor_batch": 4, "repeats": 2,
         "calibration": {"scale": 0.02, "byte_sizes": (2 ** 14, 2 ** 20)}}


@contextmanager
def part(name: str):
    """Time one part and print it against its budget."""
    start = time.perf_counter()
    print(f"[{name}] budget {BUDGET_S[name]} s", file=sys.stderr, flush=True)
    yield
    print(f"[{name}] took {time.perf_counter() - start:.0f} s (budget {BUDGET_S[name]} s)", file=sys.stderr, flush=True)


def _first(models, n):
    return list(models) if n is None else list(models)[:n]


def _command_output(args) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30, cwd=ROOT).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(device: torch.device, argv) -> dict:
    cuda = device.type == "cuda"
    return {"device_name": torch.cuda.get_device_name(device) if cuda else cpu_name(),
            "driver": _command_output(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
            if cuda else "none (CPU)",
            "cuda": torch.version.cuda or "none", "torch": torch.__version__, "timm": timm.__version__,
            "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host_cpu": cpu_name(), "commit": _command_output(["git", "rev-parse", "HEAD"]),
            "command": " ".join(["python", "benchmarks/gpu_evidence.py", *argv])}


def run_cuda_tests(out: Path) -> int:
    """`pytest -m gpu` over the test modules that hold `gpu`-marked tests (collecting only those is quicker, and
    a module that needs a package the GPU machine lacks cannot stop the others)."""
    modules = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                     if "mark.gpu" in p.read_text())
    cmd = [sys.executable, "-m", "pytest", *modules, "-m", "gpu", "-q", "-rA", "-p", "no:cacheprovider",
           "--continue-on-collection-errors"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = (done.stdout + done.stderr).splitlines()
    keep = [ln for ln in lines if ln.startswith(("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS"))
            or any(w in ln for w in (" passed", " failed", " error", " skipped", " deselected"))]
    text = "\n".join([" ".join(cmd[2:]), *keep, f"exit code {done.returncode}", ""])
    write_atomic(out / "cuda_tests.txt", lambda tmp: tmp.write_text(text))
    print(f"gpu tests: {keep[-1] if keep else 'no summary'} (exit code {done.returncode})", file=sys.stderr)
    return done.returncode


def shvit_throughput(device: torch.device, cfg: dict) -> pd.DataFrame:
    """SHViT S1-S4 in interleaved rounds (rotated order), each round a `measure_throughput` window per model."""
    paper = load_reference("shvit_table2").set_index("timm_name")
    names, batch = _first(SHVIT, cfg["models"]), cfg["throughput_batch"]
    models = {n: create_model_at(n, int(paper.resolution[n]), batch_size=batch, device=device)[0] for n in names}
    per_round = {n: [] for n in names}
    for r in tqdm(range(cfg["rounds"]), desc="throughput rounds", unit="round", file=sys.stderr):
        for n in names[r % len(names):] + names[:r % len(names)]:
            rec = measure_throughput(models[n], runtime=device.type, batch_size=batch,
                                     resolution=int(paper.resolution[n]), warmup_s=cfg["warmup_s"],
                                     window_s=cfg["window_s"])
            per_round[n].append(rec["images_per_s"])
    rows = []
    for n in names:
        ref = float(paper.gpu_img_s[n])
        est = log_ratio_interval([v / ref for v in per_round[n]], "timing rounds")   # positive, as speed is
        rows.append({"model": n, "resolution": int(paper.resolution[n]), "batch_size": batch,
                     "amp": device.type == "cuda", "rounds": cfg["rounds"], "images_per_s": est.value * ref,
                     "low": est.low * ref, "high": est.high * ref, "a100_img_s": ref, "ratio": est.value,
                     "ratio_low": est.low, "ratio_high": est.high, "device_name": rec["device_name"],
                     "torch": torch.__version__})
    return pd.DataFrame(rows)


def predictor_accuracy(device: torch.device, cfg: dict, out: Path) -> tuple:
    """Calibrate on `device`, predict and time the held-out models (`benchmarks/latency_predictor.py`'s way)."""
    machine = calibrate(device, threads=None if device.type == "cuda" else 1, **cfg["calibration"])
    machine.save(out / "predictor_machine.json")
    machine.pin_malloc()
    names = _first(PREDICTOR_HELD_OUT_MODELS_2, cfg["models"])
    predictors = {n: model_predictor(n, machine, batch_size=cfg["predictor_batch"], device=device)
                  for n in tqdm(names, desc="predictors", unit="model", file=sys.stderr)}
    latency = measure_stage_latency(predictors, repeats=cfg["repeats"], warmup=2)
    summary = predictor_summary(predictor_stages(predictors, latency))
    pooled = summary.iloc[-1]
    figures = {"models": len(names), "batch_size": cfg["predictor_batch"], "repeats": cfg["repeats"],
               "median_abs_error_pct": float(pooled["median_abs_error_pct"]),
               "max_abs_error_pct": float(pooled["max_abs_error_pct"]),
               "worst_model": str(summary.iloc[:-1].loc[summary.iloc[:-1]["error_pct"].abs().idxmax(), "model"]),
               "pooled_stage_rho": float(pooled["rho"]),
               "roofline_median_abs_error_pct": float(pooled["roofline_median_abs_error_pct"]),
               "calibration_s": machine.calibration_s, "machine": machine.name}
    return summary, figures


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: a dry run (needs --out)")
    p.add_argument("--out", metavar="DIR", type=Path, help="default: results/gpu/<device slug>/")
    p.add_argument("--quick", action="store_true", help="2 models, 2 rounds, batch 4, a small calibration")
    p.add_argument("--skip-tests", action="store_true", help="do not run the gpu-marked tests first")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.device == "cpu" and args.out is None:
        raise UserError("--device cpu needs --out DIR: CPU results do not belong under results/gpu/")
    device, cfg = resolve_device(args.device), QUICK if args.quick else FULL
    if device.type == "cpu":
        torch.set_num_threads(1)   # as the CPU protocol: one thread
    about = {**provenance(device, sys.argv[1:] if argv is None else argv), "quick": args.quick}
    slug = device_slug(about["device_name"])
    out = args.out or ROOT / "results" / "gpu" / slug
    out.mkdir(parents=True, exist_ok=True)
    write_json(about, out / "provenance.json")
    if not args.skip_tests:
        with part("tests"):
            run_cuda_tests(out)
    with part("throughput"):
        write_csv(shvit_throughput(device, cfg), out / "throughput.csv")
    with part("breakdown"):
        write_csv(breakdown_table(_first(PAPER_MODELS, cfg["models"]), device=device, batch_size=cfg["breakdown_batch"],
                                  repeats=cfg["breakdown_repeats"]), out / "breakdown.csv")
    with part("predictor"):
        summary, figures = predictor_accuracy(device, cfg, out)
        write_csv(summary, out / "predictor.csv")
        write_json(figures, out / "predictor_summary.json")
    print(pd.read_csv(out / "throughput.csv")[["model", "images_per_s", "low", "high", "ratio"]].to_string(index=False))
    print(f"predictor: median |error| {figures['median_abs_error_pct']:.1f}%, "
          f"worst {figures['max_abs_error_pct']:.1f}% "
          f"({figures['worst_model']}), pooled stage rho {figures['pooled_stage_rho']:.3f}; written to {out}, "
          f"to be committed as results/gpu/{slug}/")
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = exit_on_user_error(main, prog="gpu_evidence")()
    print(f"({time.perf_counter() - t0:.0f} s in all)", file=sys.stderr)
    raise SystemExit(code)
