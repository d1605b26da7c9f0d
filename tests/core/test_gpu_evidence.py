"""The GPU evidence, ready for a lent GPU and checked here on the CPU: `benchmarks/gpu_evidence.py --quick` writes
every file with its columns, `core.gpu_evidence` reads it back (and refuses a malformed folder in one line), and
figures 01, 06 and 09 draw a GPU panel from it, and none without it."""
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis.core.errors import UserError
from analysis.core.gpu_evidence import GPU_FILES, PROVENANCE_FIELDS, device_slug, gpu_results
from analysis.core.paths import project_root
from analysis.core.plotting import legibility_problems
from analysis.core.reference import load_reference

ROOT = project_root()
SCRIPT = ROOT / "benchmarks" / "gpu_evidence.py"


def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """One quick CPU run of the script, as `results/gpu/cpu-dry-run/` under a temporary results folder."""
    root = tmp_path_factory.mktemp("results")
    done = run_script("--device", "cpu", "--quick", "--skip-tests", "--out", str(root / "gpu" / "cpu-dry-run"))
    assert done.returncode == 0, done.stderr[-2000:]
    return root


def test_device_slug():
    assert device_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert device_slug("NVIDIA A100-SXM4-40GB") == "nvidia-a100-sxm4-40gb"


def test_cpu_without_out_is_refused_in_one_line():
    done = run_script("--device", "cpu", "--quick")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--out" in done.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this host has CUDA")
def test_cuda_without_a_gpu_is_refused_in_one_line(tmp_path):
    done = run_script("--quick", "--skip-tests", "--out", str(tmp_path))
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "no CUDA device" in done.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_dry_run_writes_every_file_with_its_columns_and_finite_values(dry_run):
    folder = dry_run / "gpu" / "cpu-dry-run"
    provenance = json.loads((folder / "provenance.json").read_text())
    assert set(PROVENANCE_FIELDS) <= set(provenance) and provenance["quick"] is True
    assert not (folder / "cuda_tests.txt").exists()   # --skip-tests
    for name, columns in GPU_FILES.items():
        if name.endswith(".csv"):
            df = pd.read_csv(folder / name)
            assert set(columns) <= set(df.columns), name
            per_model = [c for c in columns if "abs_error" not in c and c != "flops_per_byte"]  # see below
            numbers = df.loc[df["model"] != "all", per_model].select_dtypes("number")
            assert not numbers.empty and np.isfinite(numbers.to_numpy(float)).all(), name
        else:
            data = json.loads((folder / name).read_text())
            assert set(columns) <= set(data), name
            assert all(math.isfinite(data[k]) for k in columns), name
    t = pd.read_csv(folder / "throughput.csv").set_index("model")
    paper = load_reference("shvit_table2").set_index("timm_name")
    assert t.loc["shvit_s1", "a100_img_s"] == 33489 and list(t.index) == ["shvit_s1", "shvit_s2"]
    assert np.allclose(t["ratio"], t["images_per_s"] / paper.loc[t.index, "gpu_img_s"], rtol=1e-4)
    assert ((t["low"] <= t["images_per_s"]) & (t["images_per_s"] <= t["high"])).all() and (t["rounds"] == 2).all()
    b = pd.read_csv(folder / "breakdown.csv")   # flops_per_byte is NaN where a category moves no bytes
    assert np.allclose(b.groupby("model")["share"].sum(), 1.0)
    summary = json.loads((folder / "predictor_summary.json").read_text())
    p = pd.read_csv(folder / "predictor.csv").set_index("model")   # the pooled figures are in its row "all"
    assert np.isfinite(p.loc["all", [c for c in GPU_FILES["predictor.csv"] if "abs_error" in c]].to_numpy(float)).all()
    median = p.drop("all")["error_pct"].abs().median()
    assert summary["median_abs_error_pct"] == pytest.approx(median, rel=1e-5)   # the CSV keeps 6 digits
    assert json.loads((folder / "predictor_machine.json").read_text())["device"] == "cpu"


@pytest.mark.slow
def test_loader_reads_the_dry_run_back_and_the_figures_draw_its_panels(dry_run, figure_only):
    from analysis.cost.gpu_plots import predictor_gpu_summaries
    from analysis.cost.predictor_plots import plot_predictor
    from analysis.cost.plots import plot_runtime_and_traffic, plot_speed_accuracy

    gpu = gpu_results(dry_run)
    assert list(gpu) == ["cpu-dry-run"]
    r = gpu["cpu-dry-run"]
    assert r.title == f"{r.provenance['device_name']}, {r.provenance['date'][:10]}"
    table = pd.read_csv(ROOT / "results" / "01_speed_accuracy.csv")
    hardware = {"CPU": ("Xeon Gold 5218R, 1 thread", "here")}
    breakdown = pd.read_csv(ROOT / "results" / "06_runtime_breakdown_cpu.csv")
    for draw, without in ((lambda g: plot_speed_accuracy(table, hardware, gpu=g), 3),
                          (lambda g: plot_runtime_and_traffic(breakdown, where="here", gpu=g), 2)):
        assert len(draw({}).axes) == without   # no GPU results: the figure as before
        fig = draw(gpu)
        assert len(fig.axes) == without + 1
        titled = [ax for ax in fig.axes if r.device in ax.get_title() and r.date in ax.get_title()]
        assert len(titled) == 1 and not legibility_problems(fig)
    stages = pd.read_csv(ROOT / "results" / "09_predictor_figure_stages_cpu.csv")
    cpu = {"held-out set 2": pd.read_csv(ROOT / "results" / "09_predictor_summary_2_cpu.csv")}
    assert len(plot_predictor(stages, {**cpu, **predictor_gpu_summaries({})}).axes) == 3 + 1
    fig = plot_predictor(stages, {**cpu, **predictor_gpu_summaries(gpu)})
    (panel,) = [ax for ax in fig.axes if r.device in ax.get_title() and r.date in ax.get_title()]
    assert len(fig.axes) == 3 + 2 and len(panel.collections) >= 2 + 2   # the bands, predictor and roofline points


def synthetic_folder(root):
    """A GPU folder of one row per file with exactly the columns the loader requires."""
    folder = root / "gpu" / "test-gpu"
    folder.mkdir(parents=True)
    (folder / "provenance.json").write_text(json.dumps({k: "x" for k in PROVENANCE_FIELDS}
                                                       | {"device_name": "Test GPU", "date": "2026-12-06T00:00:00"}))
    for name, columns in GPU_FILES.items():
        if name.endswith(".csv"):
            pd.DataFrame([{c: 1 for c in columns}]).to_csv(folder / name, index=False)
        else:
            (folder / name).write_text(json.dumps({c: 1 for c in columns}))
    return folder


def test_no_gpu_folder_means_no_results(tmp_path):
    assert gpu_results(tmp_path) == {}


def test_a_synthetic_folder_loads(tmp_path):
    synthetic_folder(tmp_path)
    assert gpu_results(tmp_path)["test-gpu"].title == "Test GPU, 2026-12-06"


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "provenance.json").write_text(json.dumps({"device_name": "Test GPU"})), "lacks driver"),
    (lambda f: (f / "provenance.json").write_text("{not json"), "not readable JSON"),
    (lambda f: (f / "provenance.json").unlink(), "missing"),
    (lambda f: pd.DataFrame({"model": ["a"]}).to_csv(f / "throughput.csv", index=False), "lacks columns"),
    (lambda f: (f / "breakdown.csv").write_text(""), "not a readable CSV"),
    (lambda f: (f / "predictor_summary.json").write_text("[1, 2]"), "expected a JSON object"),
])
def test_a_malformed_folder_is_one_user_error_naming_the_file(tmp_path, damage, message):
    folder = synthetic_folder(tmp_path)
    damage(folder)
    with pytest.raises(UserError, match=message) as e:
        gpu_results(tmp_path)
    assert "\n" not in str(e.value) and str(folder) in str(e.value)


@pytest.mark.artifacts
def test_the_committed_gpu_results_if_any_load():
    """What was committed under results/gpu/ reads back, each folder named for its device and none a --quick
    dry run (nothing yet: no GPU has been lent)."""
    for slug, r in gpu_results().items():
        assert slug == device_slug(r.device) and not r.provenance.get("quick", False), r.folder
