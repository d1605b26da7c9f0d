"""Every notebook figure and the roofline CLI's, drawn from the committed results/ tables (no training, no
timing), is legible: no overlapping texts, nothing past the figure's edges, no empty cell, no legend over
data, and text at least `MIN_TEXT_PX` tall where JupyterLab shows it (`core.plotting.legibility_problems`)."""
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from analysis.core import plotting
from analysis.core.gpu_evidence import gpu_results
from analysis.core.paths import project_root
from analysis.core.runtime import measured_on_text
from analysis.core.plotting import legibility_problems, overlapping_texts, provenance, texts_off_canvas

pytestmark = [pytest.mark.artifacts, pytest.mark.usefixtures("figure_only")]

ROOT = project_root()
RESULTS = ROOT / "results"


@pytest.fixture(autouse=True)
def _committed_results(monkeypatch):
    """`figure_only` runs each test in an empty folder: the lab's cached tables are read from the project."""
    monkeypatch.setenv("SHVIT_LAB_ROOT", str(ROOT))


def read(name: str) -> pd.DataFrame:
    return pd.read_csv(RESULTS / name)


def figure_01():
    from analysis.cost.plots import plot_speed_accuracy
    host = measured_on_text(read("01_speed_accuracy_cpu.csv"))
    fig = plot_speed_accuracy(read("01_speed_accuracy.csv"), {"CPU": ("Xeon Gold 5218R, 1 thread", host)},
                              gpu=gpu_results(RESULTS))   # committed GPU panels, when a lent GPU left any
    provenance(fig, scale="full (paper resolutions)", weights="random (speed only; top-1 from the paper)",
               extra=f"ours: {host}, batch 16, 2 s window per model")
    return fig


def figure_02():
    from analysis.cost.plots import plot_macro_design
    from analysis.lab import experiments
    from analysis.lab.replicates import top1_intervals
    micro_top1 = top1_intervals(experiments.predictions_table(progress=False))
    fig = plot_macro_design(read("02_macro_design.csv"), read("02_macro_design_micro.csv"), micro_top1,
                            rounds=read("02_macro_design_rounds_cpu.csv"))
    provenance(fig, scale="full (224 px; b' 256 px) | accuracy: micro (48 px)",
               weights="random (cost, latency) | trained here (micro accuracy)",
               extra=f"{measured_on_text(read('02_macro_design_latency.csv'))}, batch 16, median of 7 passes")
    return fig


def figure_04():
    from analysis.heads.plots import plot_family_similarity
    fig = plot_family_similarity(read("04_head_redundancy_families.csv"))
    provenance(fig, scale="full (224 px)", weights="random", extra="16 images: sklearn sample-image crops (seed 0)")
    return fig


def figure_05():
    from analysis.lab import experiments
    from analysis.lab.plots import plot_single_head_designs
    from analysis.lab.single_head_designs import accuracy_table, paper_designs, speed_table
    designs, runs = paper_designs(), read("05_single_head_throughput.csv")
    table = speed_table(runs, designs)
    accuracy = accuracy_table(designs, experiments.single_head_table(progress=False),
                              experiments.predictions_table(progress=False))
    fig = plot_single_head_designs(table, accuracy)
    provenance(fig, scale="speed: full (224 px) | accuracy: micro (48 px)",
               weights="random (speed) | trained here (micro accuracy)",
               extra=f"speed: {measured_on_text(runs[runs.runtime == 'cpu'])}, "
                     "batch 16, 12 interleaved rounds of 1.5 s windows, "
                     "geometric mean with 95% t-interval")
    return fig


def figure_06():
    from analysis.cost.plots import plot_runtime_and_traffic
    table = read("06_runtime_breakdown_cpu.csv")
    fig = plot_runtime_and_traffic(table, where=measured_on_text(table), gpu=gpu_results(RESULTS))
    provenance(fig, scale="full (native resolutions)", weights="random (speed only)",
               extra=f"{measured_on_text(table)}, batch 16, torch.profiler, 3 passes; hatched = memory-bound")
    return fig


def figure_08():
    from analysis.evidence.plots import plot_scorecard
    fig = plot_scorecard(read("claims.csv"))
    provenance(fig, scale="full, micro and meso (per panel)", weights="per panel: architecture only, random, trained here",
               extra="95% intervals (seeds as a random effect); Holm across findings; rules registered in "
                     "analysis/evidence/registry.toml, post hoc or prospective per panel; CPU timings")
    return fig


def _roofline(models=None, measured: bool = True):
    from analysis.cost.plots import plot_roofline
    from analysis.cost.roofline import Machine
    machine = Machine.from_dict(read("09_roofline_machine_cpu.csv").iloc[0].to_dict())
    ops, stages = read("09_roofline_ops_cpu.csv.gz"), read("09_roofline_stages_cpu.csv")
    if models is not None:
        ops, stages = ops[ops.model.isin(models)], stages[stages.model.isin(models)]
    return plot_roofline(ops, machine, stages if measured else None), machine


def figure_09():
    fig, machine = _roofline()
    provenance(fig, scale="full (native resolutions)", weights="random (speed only)",
               extra=f"{machine.name}, batch 16, 10 timed passes")
    return fig


def figure_roofline_cli():
    """`python -m analysis.roofline --model deit_tiny_patch16_224 shvit_s4 --figure f`: counted, not timed."""
    fig, machine = _roofline(["deit_tiny_patch16_224", "shvit_s4"], measured=False)
    provenance(fig, scale="full", weights="random (speed only)", extra=f"{machine.name}, batch 16")
    return fig


def figure_09_predictor():
    from analysis.cost.predictor_plots import plot_predictor
    fig = plot_predictor(read("09_predictor_figure_stages_cpu.csv"),
                         {"set 1, malloc not pinned": read("09_predictor_summary_cpu.csv"),
                          "set 2, malloc pinned": read("09_predictor_summary_2_cpu.csv"),
                          "set 3, page faults per byte": read("09_predictor_summary_3_cpu.csv")})
    provenance(fig, scale="full (native resolutions)", weights="random (speed only)",
               extra="machine: AMD EPYC, 1 thread(s); latency: AMD EPYC, 1 thread, torch 2.14.1+cu130, batch 16, "
                     "10 timed passes")
    return fig


FIGURES = {"01": figure_01, "02": figure_02, "04": figure_04, "05": figure_05, "06": figure_06, "08": figure_08,
           "09": figure_09, "09 predictor": figure_09_predictor,
           "roofline CLI": figure_roofline_cli}


@pytest.mark.parametrize("name", FIGURES)
def test_figure_is_legible_at_notebook_width(name):
    fig = FIGURES[name]()
    assert legibility_problems(fig) == []


# -- the checker itself, on figures with known answers ----------------------------------------------------

def test_checker_finds_overlapping_texts_and_texts_off_the_canvas():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    a = ax.text(0.5, 0.5, "first label")
    b = ax.text(0.52, 0.5, "second label")
    ax.text(0.1, 0.9, "apart")
    off = fig.text(0.9, 0.5, "a long text that runs past the right edge")
    assert overlapping_texts(fig) == [(a, b)] or overlapping_texts(fig) == [(b, a)]
    assert texts_off_canvas(fig) == [off]


def test_checker_finds_empty_cells_legends_over_data_and_small_text():
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3))
    left.bar([0, 1, 2], [3, 3, 3], label="bars")
    left.legend(loc="upper left")              # the bars reach the top: the legend covers them
    right.set_visible(False)
    left.set_xlabel("tiny", fontsize=4)
    problems = legibility_problems(fig)
    assert any(p.startswith("legend over data") for p in problems)
    assert any(p.startswith("empty axes") for p in problems)
    small = [p for p in problems if p.startswith("text ")]
    # 4 pt on a 12-inch figure shown 1000 px wide: 4 x 1000 / (12 x 72) = 4.6 px
    assert small and small[0].startswith("text 4.6 px")


def test_provenance_below_the_figure_is_not_off_canvas_but_a_clean_figure_has_no_problems():
    fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    ax.plot([0, 1], [0, 1], label="line")
    ax.legend(loc="lower right")
    ax.set(title="t", xlabel="x", ylabel="y")
    provenance(fig, scale="micro", weights="random")
    assert legibility_problems(fig) == []
    assert plotting.smallest_text_px(fig) == pytest.approx(7 * fig.dpi / 72)
