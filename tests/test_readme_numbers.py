"""Every number the README quotes from a measurement, recomputed from the committed tables.

One case per gallery row ("we measured", and the paper's numbers where a table holds them) and per prose
paragraph that quotes results (the meso run, its recipe search, what the head analysis costs): each lists the
strings the README must contain, computed from `results/` (figure tables, the scorecard `results/claims.csv`,
`results/meso/`, `results/benchmarks/*.json`) with the README's rounding (half up, U+2212 minus), so a failure
names the row and the number. In a gallery cell, every number must be one of those (or a design's name, such as
16x16): a number typed into the README from one run fails here.

`python tests/test_readme_numbers.py` prints the head-analysis paragraph rendered from the benchmark results.
"""
import json
import re
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
from scipy.stats import spearmanr

from analysis.cost.predictor import predictor_summary, unprobed_models

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"
BENCHMARKS = RESULTS / "benchmarks"
MINUS = "\u2212"
NAMES = {"deit_tiny_patch16_224": "DeiT-T", "swin_tiny_patch4_window7_224": "Swin-T",
         "efficientvit_m4": "EfficientViT-M4", "shvit_s4": "SHViT-S4"}
NAMES_BY_SHORT = {short: name for name, short in NAMES.items()}
# numbers that name a design or a convention, not a result
DESIGN_WORDS = ("16x16", "4x4", "95%", "top-1", "Michel et al. 2019", "3-head", "(seed 0)", "3x widths", "Table 2", "Fig. 2",
                "`results/10_model_zoo.csv`", "roofline of 09")


def fmt(x: float, digits: int = 1, sign: bool = False, rounding=ROUND_HALF_UP) -> str:
    """`x` as the README writes it: `digits` decimals rounded half up, U+2212 for minus, '+' where `sign`."""
    q = Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-digits), rounding)
    q = abs(q) if q == 0 else q
    return ("+" if sign and q > 0 else "") + f"{q:f}".replace("-", MINUS)


def interval(value: float, low: float, high: float, digits: int = 1, sign: bool = False) -> str:
    return f"{fmt(value, digits, sign)} [{fmt(low, digits)}, {fmt(high, digits)}]"


def table(name: str) -> pd.DataFrame:
    return pd.read_csv(RESULTS / name)


def claim(row: str) -> pd.Series:
    claims = table("claims.csv").set_index("row")
    return claims.loc[row]


def claim_interval(row: str, digits: int = 1, unit: str = " pp") -> str:
    c = claim(row)
    if unit == "x":
        return f"{fmt(c.ours, digits)}x [{fmt(c.ci_low, digits)}, {fmt(c.ci_high, digits)}]"
    return interval(c.ours, c.ci_low, c.ci_high, digits, sign=True) + unit


def batch(row: str) -> str:
    """'batch N' of a timing row of the scorecard (its `measured_on`)."""
    return re.search(r"batch \d+", claim(row).measured_on).group()


def tokens(text: str) -> list[str]:
    """The 'AxB' token grids or map sizes a scorecard precondition or note names, in order."""
    return re.findall(r"\d+x\d+", text)


def within(rel_diffs) -> str:
    """'within X%': the largest |relative difference| rounded up to 0.1%, so the claim stays true."""
    return fmt(100 * max(abs(float(d)) for d in rel_diffs), 1, rounding=ROUND_CEILING) + "%"


def row_00():
    t = table("00_shvit_variants.csv")
    params, macs = t[t.metric == "params_m"], t[t.metric == "macs_m"]
    return [f"{'/'.join(fmt(p) for p in params.paper)} M params", f"{'/'.join(fmt(m, 0) for m in macs.paper)} M MACs",
            f"all within {within(t.rel_diff)}", f"model: {'/'.join(fmt(m) for m in macs.ours)} M"]


def row_01():
    t = table("01_speed_accuracy_cpu.csv")
    rho = spearmanr(t.ours_img_s, t.paper_cpu_img_s).statistic
    c = claim("shvit_t2_ranking@full")
    return [f"the {len(t)} Table 2 models", f"ρ = {interval(rho, c.ci_low, c.ci_high, 2)}",
            f"({claim('shvit_t2_ranking@full').measured_on.split(' (')[0]})"]


def micro_top1() -> pd.Series:
    """Micro top-1 (%) per recipe: the mean over seeds figure 02 draws (every seed scores the same images)."""
    p = pd.read_csv(RESULTS / "micro" / "predictions.csv.gz")
    return 100 * (p.pred == p.label).groupby(p.key).mean()


def row_02():
    t = table("02_macro_design.csv").groupby("model")[["macs", "mem_bytes", "latency_ms"]].sum()
    a, b = t.loc["shvitlab_fig2_a"], t.loc["shvitlab_fig2_b"]
    stages = table("02_macro_design_latency.csv")
    rounds = table("02_macro_design_rounds_cpu.csv")
    seeds = pd.read_csv(RESULTS / "micro" / "predictions.csv.gz").query("key == 'fig2_a'").seed.nunique()
    top1 = micro_top1()
    return [f"{fmt(a.macs / b.macs)}x fewer MACs", f"{fmt(a.mem_bytes / b.mem_bytes)}x fewer bytes",
            f"{fmt(a.latency_ms / b.latency_ms)}x faster summed over its stages (batch "
            f"{stages.batch_size.iloc[0]}, {stages.device.iloc[0].upper()})",
            f"{claim_interval('shvit_fig2_speed@full', 2, 'x')} over {rounds['round'].nunique()} interleaved rounds "
            f"of the whole models (batch {rounds.batch_size.iloc[0]}, {rounds.threads.iloc[0]} thread",
            f"micro top-1 (a) {fmt(top1['fig2_a'])}% vs (b) {fmt(top1['fig2_b'])}%, mean of {seeds} seeds",
            f"(b) − (a) {claim_interval('shvit_fig2_accuracy@micro')}"]


def row_02_frontier():
    f = table("meso/frontier.csv").set_index("key")
    lat, comp = claim("shvit_fig2_frontier_latency@meso"), claim("shvit_fig2_frontier_compute@meso")
    a, half, widest = f.loc["meso_fig2_a"], f.loc["meso_fig2_a_half"], f.loc["meso_fig2_b_w96"]
    both = "registered before training" if lat.prospective and comp.prospective else "post hoc"
    return [f"at meso ({a.resolution} px, {int(a.seeds)} seeds each",
            f"at (a)'s CPU latency is {claim_interval(lat.name)} below (a)",
            f"{claim_interval(comp.name)} at (a)'s training compute", f"{lat.verdict} at this scale (both rows {both})",
            f"(a) reaches {fmt(a.top1)}% at {fmt(a.latency_ms, 2)} ms",
            f"half-width (a) {fmt(half.top1)}% at {fmt(half.latency_ms, 2)} ms",
            f"saturates at {fmt(widest.top1)}% (3x widths, {fmt(widest.latency_ms, 2)} ms)",
            f"latency on {lat.measured_on}"]


def row_03():
    bands = table("03_deit_heads_micro_intervals.csv")
    similarity, remove = bands[bands.column == "similarity_pct"], bands[bands.column == "remove1_delta_pct"]
    zero = "containing 0" if ((remove.low <= 0) & (remove.high >= 0)).all() else "not all containing 0"
    grid, needed = tokens(claim("shvit_fig3_remove_one@micro").precondition)
    importance = table("03_deit_head_importance_micro.csv")
    rho = {h: spearmanr(g.importance, g.remove1_cost_pct).statistic for h, g in importance.groupby("heads")}
    return [f"{grid} tokens, below the {needed}",
            f"changes top-1 by {fmt(remove.value.min(), sign=True)} to {fmt(remove.value.max(), sign=True)} pp",
            f"every per-layer interval over {bands.seeds.max()} seeds {zero}",
            f"similarity {fmt(similarity.value.min(), 0)}–{fmt(similarity.value.max(), 0)}%",
            f"(ρ = {' / '.join(fmt(r, 2) for r in rho.values())} for {' / '.join(str(h) for h in rho)} heads)"]


def row_03_query_maps():
    return []


def row_04():
    t = table("04_head_redundancy_families.csv")
    similarity = 100 * t[(t.metric == "mean_pairwise_cosine") & t.applicable].value
    single = ", ".join(NAMES.get(m, m) for m in t[~t.applicable].model.unique())
    weights = "random weights" if set(t.weights) == {"random"} else "not only random weights"
    return [f"single head ({single}) reported n/a",
            f"{weights} give near-uniform maps (mean pairwise similarity {fmt(similarity.min(), 0)}–"
            f"{fmt(similarity.max(), 0)}% per layer)"]


def row_05():
    speed, accuracy = claim("shvit_t6_mhsa_speed@full"), claim("shvit_t6_mhsa_accuracy@micro")
    designs = table("05_single_head_designs.csv").query("not baseline")
    every = "every" if ((designs.micro_delta_low <= 0) & (designs.micro_delta_high >= 0)).all() else "not every"
    return [f"SHSA runs at {claim_interval(speed.name, 2, 'x')} MHSA's CPU speed ({speed.replicates} interleaved "
            f"rounds, PyTorch, {speed.measured_on.split(' (paper')[0]}; paper {fmt(speed.paper_value, 2)}x",
            f"{every} accuracy change has a 95% interval containing zero ({accuracy.replicates} seeds",
            f"SHSA − MHSA {claim_interval(accuracy.name)}",
            f"its attention sees {tokens(accuracy.precondition)[0]} tokens"]


def row_06():
    t = table("06_runtime_breakdown_cpu.csv")
    share = 100 * t[t.memory_bound].groupby("model", sort=False).share.sum()
    return [f"memory-bound share of CPU runtime (batch {t.batch_size.iloc[0]}): "
            + ", ".join(f"{NAMES[m]} {fmt(s)}%" for m, s in share.items())]


def row_07():
    g = table("07_gradcam_stem.csv").set_index("key")
    px = table("02_macro_design_micro.csv").drop_duplicates("key").set_index("key").resolution
    micro, meso = claim("shvit_gradcam_stem@micro"), claim("shvit_gradcam_equal_maps@meso")
    sides = set(tokens(meso.note))
    side = f"equal {sides.pop()}" if len(sides) == 1 else "unequal"
    timing = "prospective" if meso.prospective else "post hoc"
    kept = re.search(r"keeps (\d+x\d+)", micro.precondition).group(1)
    small, large = g.loc["stem4"], g.loc["fig2_b"]
    return [f"pointing game {fmt(small.pointing_game)}% ({small.stem_stride}x{small.stem_stride}) vs "
            f"{fmt(large.pointing_game)}% ({large.stem_stride}x{large.stem_stride}) vs {fmt(large.box_area)}% "
            f"random point at {px['fig2_b']} px",
            f"the 16x16 stem keeps {kept} tokens: the scorecard calls the micro row "
            f"{micro.verdict}",
            f"read at {side} maps on every seed ({meso.replicates} seeds), the 16x16 stem scores "
            f"{claim_interval(meso.name)} ({timing}, {meso.verdict})"]


PHRASES = {  # the scorecard rows row 08 quotes: label, digits, unit
    "shvit_fig2_speed@full": ("(b)'s speed-up over (a)", 2, "x"),
    "shvit_t6_mhsa_speed@full": ("SHSA's speed over MHSA's", 2, "x"),
    "effvit_fig2_memory_bound@full": ("memory-bound share, DeiT-T and Swin-T over EfficientViT-M4", 1, " pp"),
    "shvit_fig2_accuracy@meso": ("equal-width (b) − (a)", 1, " pp"),
    "shvit_fig2_frontier_latency@meso": ("the 16x16 family at (a)'s latency", 1, " pp"),
    "shvit_fig2_frontier_compute@meso": ("the 16x16 family at (a)'s training compute", 1, " pp"),
    "shvit_gradcam_stem@meso": ("Grad-CAM at {0} maps (seed 0)", 1, " pp"),
    "shvit_gradcam_last_stage@meso": ("Grad-CAM at each last stage ((b)'s map {0})", 1, " pp"),
    "shvit_gradcam_equal_maps@meso": ("Grad-CAM at equal {1} maps", 1, " pp"),
}


def scorecard_phrase(row: pd.Series) -> str:
    label, digits, unit = PHRASES[row.name]
    text = f"{label.format(*tokens(str(row.note)))} {claim_interval(row.name, digits, unit)}"
    if row.replicate_unit == "rounds":
        text += f" ({batch(row.name)})"
    return text + (", prospective" if row.prospective else "")


def row_08():
    c = table("claims.csv").set_index("row")
    sanity, findings = c[c.kind == "sanity"], c[c.kind == "finding"]
    counts = findings.verdict.value_counts()
    gate = re.search(r"needs (\d+x\d+)", c.loc["shvit_fig3_more_heads@meso"].precondition).group(1)
    floor = re.search(r"top-1 ([\d.]+)% \(deit_3h\), ([\d.]+)% \(deit_6h\) vs floor ([\d.]+)%",
                      c.loc["shvit_fig3_more_heads@meso"].precondition).groups()
    expected = [f"{c.claim.nunique()} claims of the two papers, {len(c)} rows",
                f"{len(sanity)} sanity checks {'reproduced' if (sanity.verdict == 'reproduced').all() else 'checked'}",
                f"sizes within {within([c.loc['shvit_t1_sizes@full'].ours / 100])} / "
                f"{within([c.loc['effvit_sizes@full'].ours / 100])}",
                f"Table 2 CPU ranking ρ {fmt(c.loc['shvit_t2_ranking@full'].ours, 2)}",
                f"Of {len(findings)} findings: {counts.get('not testable', 0)} not testable",
                f"fewer than {gate} tokens", f"accuracy: {floor[0]} / {floor[1]}% vs {floor[2]}% at meso"]
    for verdict in ("reproduced", "underpowered", "contradicted"):
        rows = findings[findings.verdict == verdict]
        where = " at meso" if len(rows) and rows.index.str.endswith("@meso").all() else ""
        expected.append(f"{len(rows)} {verdict}{where} (" + "; ".join(scorecard_phrase(r) for _, r in rows.iterrows())
                        + ")")
    return expected


def row_09():
    summary = table("09_roofline_summary_cpu.csv").set_index("model")
    s, pooled = summary.drop(index="all"), summary.loc["all"]
    name = {**NAMES, "shvitlab_fig2_a": "Fig. 2 (a)", "shvitlab_fig2_b": "Fig. 2 (b)"}
    below = [f"{fmt(r.rho_roofline, 2)} {name[m]}" for m, r in s.iterrows() if r.rho_roofline < 1]
    order = ("ranks every model's stages as the clock does (Spearman ρ = 1 per model" if not below else
             f"ranks the stages of {len(s) - len(below)} of {len(s)} models as the clock does (Spearman ρ = 1; "
             f"{', '.join(below)}")
    macs = ", ".join(f"{fmt(r.rho_macs, 2)} {name[m]}" for m, r in s.iterrows() if r.rho_macs < 1)
    side = "under-predicts" if (s.error_pct < 0).all() else "mispredicts"
    error = s.error_pct.abs()
    return [f"{order}; pooled over all {int(pooled.stages)} stages {fmt(pooled.rho_roofline, 3)}; MACs alone: {macs})",
            f"{side} whole models by {fmt(error.min(), 0)}–{fmt(error.max(), 0)}%"]


def predictor_figures(suffix: str = ""):
    """A held-out set's summary (set 1: suffix "", set 2: "_2"), its calibration and its misses beyond 25%, as
    the README quotes them."""
    s = table(f"09_predictor_summary{suffix}_cpu.csv").set_index("model")
    rows, pooled = s.drop(index="all"), s.loc["all"]
    machine = json.loads((REPO / "results" / f"09_predictor_machine{suffix}_cpu.json").read_text())
    kernels = sum(len(v["log2_rate"]) for v in machine["samples"].values())
    modules = {timm.models._registry.model_entrypoint(m).__module__ for m in rows.index}
    beyond = rows.index[rows.error_pct.abs() > 25]
    return rows, pooled, machine, kernels, len(modules), list(beyond)


def predictor_set(suffix: str) -> list:
    rows, pooled, machine, kernels, modules, beyond = predictor_figures(suffix)
    return [f"{len(rows)} models of {modules}", f"median absolute error {fmt(pooled.median_abs_error_pct)}% "
            f"(roofline {fmt(pooled.roofline_median_abs_error_pct)}%)", f"worst {fmt(pooled.max_abs_error_pct)}% "
            f"({rows.error_pct.abs().idxmax()})", f"{(rows.error_pct.abs() <= 10).sum()} of {len(rows)} within 10% "
            + (f"and {len(beyond)} beyond 25% ({', '.join(beyond)})" if beyond else "and none beyond 25%"),
            f"pooled stage ρ {fmt(pooled.rho, 3)}"]


SETS = ("", "_2", "_3", "_4", "_5", "_6", "_7")   # the held-out sets' file suffixes: set 1 .. 7


def enumeration(items) -> str:
    """"1", "1 and 4", "3, 5 and 6"."""
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def row_09_predictor():
    met = []
    for suffix in SETS:
        _, pooled, *_ = predictor_figures(suffix)
        met.append([pooled.median_abs_error_pct <= 10, pooled.max_abs_error_pct <= 25, pooled.rho >= 0.95])
    assert met == [[True, False, False], [False, False, False], [False, False, True], [True, False, False],
                   [False, False, True], [False, False, True], [True, True, True]], \
        "the README says which targets each set meets: update it"
    _, _, machine, kernels, *_ = predictor_figures(SETS[-1])
    return [f"calibrated from {kernels} microbenchmarks in {fmt(machine['calibration_s'])} s",
            *[s for suffix in SETS for s in predictor_set(suffix)], "its 10% target",
            "the medians of sets " + enumeration(i + 1 for i, m in enumerate(met) if m[0]),
            "the worst case (25%) on set " + enumeration(i + 1 for i, m in enumerate(met) if m[1]) + " only",
            "sets " + enumeration(i + 1 for i, m in enumerate(met) if m[2]) + " the stage order (0.95)",
            *[f"set {i}" for i in range(1, 8)], "1 thread, batch 16 (set 5: 8)"]


def predictor_paragraph():
    lat, lat5, lat6, lat7 = (table(f"09_predictor_latency{s}_cpu.csv") for s in ("_4", "_5", "_6", "_7"))
    sets = [predictor_figures(suffix) for suffix in SETS]
    tuning = table("09_predictor_tuning_summary_cpu.csv").set_index("model").loc["all"]
    assert not unprobed_models(table("09_predictor_stages_5_cpu.csv")), "set 5 was timed with the fixed probe"
    return [f"at batch 16 on {plural(int(lat.threads.iloc[0]), 'thread')} of an {lat.device_name.iloc[0]} "
            f"(torch {lat.torch.iloc[0]})", f"at batch 8 on {plural(int(lat5.threads.iloc[0]), 'thread')} of an "
            f"{lat5.device_name.iloc[0]} (torch {lat5.torch.iloc[0]})", f"set 6 at batch 16 on "
            f"{plural(int(lat6.threads.iloc[0]), 'thread')} of the same (torch {lat6.torch.iloc[0]}), set 7 at batch 16 "
            f"on {plural(int(lat7.threads.iloc[0]), 'thread')} of the same (torch {lat7.torch.iloc[0]})",
            *[s for suffix in SETS for s in predictor_set(suffix)],
            "here " + ", ".join(f"{fmt(s[2]['calibration_s'])} s" for s in sets),
            *[f"{sum(s[0].error_pct > 25)} of the {len(s[5])} misses over-predicted" for s in sets[1:3]],
            *[f"{sum(s[0].error_pct < -25)} of the {len(s[5])} misses under-predicted" for s in sets[3:6]],
            "pooled stage ρ of sets 1–4 would be " + ", ".join(fmt(unprobed_rho(suffix), 3) for suffix in SETS[:3])
            + f" and {fmt(unprobed_rho(SETS[3]), 3)}",
            *[f"{(s[0].error_pct < 0).sum()} of its {len(s[0])} models under-predicted" for s in sets[4:]],
            *context_figures(),
            f"median absolute error {fmt(tuning.median_abs_error_pct)}%, worst {fmt(tuning.max_abs_error_pct)}%",
            *tuning_categories(), unused_timm_modules(), *context_factor_figures()]


def context_factor_figures() -> list:
    """Set 7's context factor, and what setting it to 1 does on the same measured times (notebook 09)."""
    machine = json.loads((REPO / "results" / "09_predictor_machine_7_cpu.json").read_text())
    plain7 = table("09_predictor_summary_without_context_7_cpu.csv")
    tuning = [table(f"09_predictor_tuning_7_summary{s}_cpu.csv").set_index("model").loc["all"]
              for s in ("", "_without_context")]
    return [f"context factor {fmt(machine['context']['factor'], 2)}", f"set 7's median would be "
            f"{fmt(plain7.iloc[-1].median_abs_error_pct)}% and its worst {fmt(plain7.iloc[-1].max_abs_error_pct)}%, with "
            f"{(plain7.error_pct.dropna() < 0).sum()} of its {len(plain7) - 1} models under-predicted",
            f"median absolute error {fmt(tuning[0].median_abs_error_pct)}%, worst {fmt(tuning[0].max_abs_error_pct)}% "
            f"(with the factor set to 1: {fmt(tuning[1].median_abs_error_pct)}% and {fmt(tuning[1].max_abs_error_pct)}%)",
            f"{len(machine['context']['networks'])} small random networks", repeat_figures()]


def repeat_figures() -> str:
    """Set 7 calibrated and timed again on its host (`latency_predictor.py --save-repeat`)."""
    f = json.loads((REPO / "results" / "benchmarks" / "latency_predictor-held-out-7-repeat.json").read_text())["figures"]
    return (f"median absolute error {f['median |error| %']}%, worst {f['worst |error| %']}%, pooled stage ρ "
            f"{fmt(f['pooled stage rho'], 3)}, calibration {f['calibration s']} s")


def unused_timm_modules() -> str:
    """timm's model modules that no tuning or held-out predictor set draws from."""
    from analysis.core import names
    sets = [v for n, v in vars(names).items() if n.startswith("PREDICTOR_") and "_MODELS" in n]
    to_module = timm.models._registry._model_to_module
    modules = set(to_module.values())
    unused = sorted(modules - {to_module[m] for s in sets for m in s if m in to_module})
    assert len(sets) == 8 and len(unused) == 1
    return f"Of timm's {len(modules)} model modules, all but one ({unused[0]}:"


def context_figures() -> list:
    """The tuning models op by op on the Intel host (`benchmarks/predictor_context.py`)."""
    f = json.loads((REPO / "results" / "benchmarks" / "predictor_context.json").read_text())["figures"]
    c = table("09_predictor_tuning_context_cpu.csv")
    swin = c[c.model == "swin_tiny_patch4_window7_224"]
    share = 100 * swin.subnormal_ms.sum() / swin.in_model_ms.sum()
    return [f"alone at {fmt(f['rate ratio'], 2)}x their predicted time, inside the models at "
            f"{fmt(f['context ratio'], 2)}x their time alone (normalisation {fmt(f['context ratio normalisation'], 2)}x, "
            f"activations {fmt(f['context ratio activation'], 2)}x, convolutions and matmuls "
            f"{fmt(f['context ratio conv/matmul'], 2)}x)", f"{fmt(f['between-ops ratio'], 2)}x the sum of their ops",
            f"{fmt(share, 0)}% of its time in the model", f"{fmt(swin.measured_flushed_ms.iloc[0], 0)} ms instead of "
            f"{fmt(swin.measured_ms.iloc[0], 0)} ms"]


def tuning_categories() -> list:
    """The tuning models' profiled / predicted time per op category on set 5's host, pooled and per model."""
    c = table("09_predictor_tuning_categories_cpu.csv")
    pooled = c.groupby("category")[["profiled_ms", "predicted_ms"]].sum()
    ratio = pooled["profiled_ms"] / pooled["predicted_ms"]
    one = c.set_index(["model", "category"])["ratio"]
    return [f"convolutions and matmuls at {fmt(ratio['conv/matmul'], 2)}x the predicted time (DeiT-T's "
            f"{fmt(one['deit_tiny_patch16_224', 'conv/matmul'], 2)}x, MobileNetV3-S's "
            f"{fmt(one['mobilenetv3_small_100', 'conv/matmul'], 2)}x)", f"element-wise ops at "
            f"{fmt(ratio['element-wise'], 2)}x, norms at {fmt(ratio['normalisation'], 2)}x and softmax at "
            f"{fmt(ratio['softmax'], 2)}x, ConvNeXt-atto's activations (GELU) at "
            f"{fmt(one['convnext_atto', 'activation'], 2)}x"]


def unprobed_rho(suffix: str) -> float:
    """A held-out set's pooled stage rho without the models with ops in a stage that reads 0 ms (the probe missed it)."""
    stages = table(f"09_predictor_stages{suffix}_cpu.csv")
    return predictor_summary(stages[~stages.model.isin(unprobed_models(stages))]).iloc[-1].rho


def row_10():
    t = table("10_model_zoo.csv")
    mib, share = t.set_index("model").mem_bytes / 2**20, 100 * t.set_index("model").memory_bound_share
    ours = [m for m in share.index if m.startswith(("shvit_s", "efficientvit_m"))]
    shvit = [f"shvit_s{i}" for i in range(1, 5)]
    fewest = mib.nsmallest(2)
    return [f"{len(t)} timm models of {t.family.nunique()} timm modules at batch 1",
            "the two that move the fewest bytes are " + " and ".join(f"{m} ({fmt(v)} MiB)" for m, v in fewest.items()),
            f"SHViT-S1..S4 and EfficientViT-M0/M4/M5 move {fmt(mib[ours].min())}–{fmt(mib[ours].max())} MiB, the "
            f"zoo's median {fmt(mib.median())} MiB",
            f"SHViT-S1..S4 {' / '.join(fmt(share[m]) for m in shvit)}%",
            f"EfficientViT-M0/M4/M5 {' / '.join(fmt(share[f'efficientvit_m{i}']) for i in (0, 4, 5))}%",
            f"zoo median {fmt(share.median())}%, range {fmt(share.min())}–{fmt(share.max())}%"]


def roofline_paragraph():
    s = table("09_roofline_stages_cpu.csv").set_index(["model", "stage"])
    swin = s.loc[("swin_tiny_patch4_window7_224", "stage1")]
    short = table("09_roofline_summary_cpu.csv").query("model != 'all'").error_pct.abs()
    return [f"the whole-model prediction is {fmt(short.min(), 0)}–{fmt(short.max(), 0)}% short, Swin-T's windowed "
            f"stage 1 {fmt(100 * (1 - swin.predicted_ms / swin.measured_ms), 0)}%"]


def meta_paragraph():
    r = benchmark("count_meta.json")
    f = r["figures"]
    return [f"`python benchmarks/count_meta.py --save` on {r['host']}, {plural(r['threads'], 'thread')}, "
            f"torch {r['torch']}, best of {r['rounds']} interleaved rounds, {r['date']}",
            f"on SHViT-S4 at {f['resolution']} px it counts {fmt(f['fvcore / meta'], 2)}x faster than fvcore "
            f"({fmt(f['meta s'], 3)} s against {fmt(f['fvcore s'], 3)} s; a real run {fmt(f['fvcore / real'], 2)}x)",
            "with equal totals" if f["totals equal"] else "with UNEQUAL totals",
            f"{f['big model']} at 518 px ({fmt(f['big G macs'])} G MACs) is built and counted in "
            f"{fmt(f['big build s'] + f['big count s'])} s"]


def meso_paragraph():
    suite = json.loads((RESULTS / "meso" / "suite.json").read_text())
    minutes, seconds = divmod(round(suite["wall_seconds_from_scratch"]), 60)
    threads = set(table("meso/models.csv").threads)
    return [f"{len(suite['seeds'])} seeds each", f"{suite['workers']} single-thread training workers"
            if threads == {1} else "training workers",
            f"From scratch it took {minutes} min {seconds} s on {suite['threads']} {suite['cpu']} cores "
            f"(the {suite['search_runs']} search runs and {suite['replicates']} replicates",
            f"(`{suite['from_scratch_commit'][:7]}`"] + rerun_sentences()


def rerun_sentences():
    """The meso suite rerun from scratch on another machine: its cost, and its numbers beside the committed ones."""
    runs = table("meso/from_scratch_runs.csv")
    rerun = runs.iloc[-1]
    folder = RESULTS / "meso" / "reruns" / rerun.note.split("reruns/")[1].split("/")[0]
    minutes, seconds = divmod(round(rerun.wall_seconds), 60)
    top1 = pd.read_csv(folder / "top1_agreement.csv")
    verdicts = pd.read_csv(folder / "verdict_agreement.csv")
    diff = top1.difference_pp
    return [f"on {rerun.workers} cores of an {rerun.cpu}", f"(commit `{rerun.commit[:7]}`, {rerun.finished}",
            f"`results/meso/reruns/{folder.name}/`", f"it took {minutes} min {seconds} s",
            "over the budget as well" if not rerun.within_budget else "within the budget",
            f"differs by {fmt(diff.min(), sign=True)} to {fmt(diff.max(), sign=True)} pp",
            f"{(top1.p_holm < 0.05).sum()} of {len(top1)} models",
            f"{verdicts.same_verdict.sum()} of {len(verdicts)} registered meso verdicts are the same",
            f"over its {top1.replicate_seeds.min()} seeds"] + unbracketed_sentence(folder, verdicts)


def unbracketed_sentence(folder, verdicts) -> list:
    """Where the rerun's verdict on the latency frontier differs: (a)'s latency beside the family's widest member's."""
    row = verdicts.set_index("row").loc["shvit_fig2_frontier_latency@meso"]
    if row.same_verdict:
        return []
    latency = pd.read_csv(folder / "frontier.csv").set_index("key").latency_ms
    return [f"*{row.verdict_replicate}* on that CPU", f"(a) ({fmt(latency['meso_fig2_a'], 2)} ms per image)",
            f"widest member ({fmt(latency['meso_fig2_b_w96'], 2)} ms)"]


def recipe_paragraph():
    augment = table("meso/lr_search_augment.csv")
    best = augment.groupby(["key", "augment"]).tune_top1.max()
    fig2 = (("(b)", "meso_fig2_b"), ("(a)", "meso_fig2_a"))
    shift = all(best[k, "shift"] > best[k, "none"] for _, k in fig2)
    change = ", ".join(f"{d} {fmt(best[k, 'none'])} -> {fmt(best[k, 'shift'])}%" for d, k in fig2)
    search = table("meso/lr_search.csv")
    search = search[search.augment == ("shift" if shift else "none")]
    chosen = search.sort_values(["tune_top1", "lr"], ascending=[False, True]).groupby("key", sort=False).head(1)
    top = sum(r.lr == search[search.key == r.key].lr.max() for r in chosen.itertuples())
    rates = {r.key: f"{r.lr:.0e}".replace("e-0", "e-") for r in chosen.itertuples()}
    deit = (f"DeiT 3 and 6 heads {rates['meso_deit_3h']}" if rates["meso_deit_3h"] == rates["meso_deit_6h"]
            else f"DeiT 3 heads {rates['meso_deit_3h']}, 6 heads {rates['meso_deit_6h']}")
    sources = table("meso/val_sources.csv")
    words = {4: "four", 6: "six"}
    return [f"a {search.tune_images.iloc[0]:,}-image *tune* split", f"{len(sources):,} val images",
            f"{'It did' if shift else 'It did not'} (at the search's {augment.epochs.iloc[0]} epochs it "
            f"{'raised' if shift else 'lowered'} both: {change})",
            f"16x16 family {rates['meso_fig2_b']}, 4x4 family {rates['meso_fig2_a']}, MHSA {rates['meso_t6_mhsa']}, "
            f"no attention {rates['meso_t6_none']}, {deit}",
            f"{words.get(top, top)} of the {words.get(len(chosen), len(chosen))} sit at the top of the grid",
            f"({sources.source.nunique()} of them behind the {len(sources):,} val images"]


OVERHEAD = {"cached": "head_similarity_overhead-malloc-cache.json", "default": "head_similarity_overhead.json"}


def benchmark(name: str) -> dict:
    path = BENCHMARKS / name
    if not path.is_file():
        pytest.fail(f"{path.relative_to(REPO)} is not committed: run `python benchmarks/head_similarity_overhead.py "
                    "--rounds 5 --breakdown --save` with and without --malloc-cache on a quiet machine")
    return json.loads(path.read_text())


def ratio(record: dict, name: str) -> str:
    """'1.06x [1.03, 1.08]'; 3 decimals where 2 would make the interval a point."""
    value, low, high = record["figures"][name]
    digits = 2 if fmt(low, 2) != fmt(high, 2) else 3
    return f"{fmt(value, digits)}x [{fmt(low, digits)}, {fmt(high, digits)}]"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def measured_on(record: dict, name: str) -> str:
    """Where and how one benchmark result was measured, with its file."""
    f, threads = record["figures"], record["threads"]
    return (f"`results/benchmarks/{name}`: `{record['command']}` on {record['cpu']}, {plural(threads, 'thread')}, "
            f"allocator `{record['allocator']}`, torch {record['torch']}, {plural(record['rounds'], 'round')} of "
            f"{f['images']} images in batches of {f['batch size']}, {record['date']}")


def overhead_paragraph() -> str:
    """The README's paragraph on what the head analysis costs, rendered from the two benchmark results."""
    cached, default = (benchmark(name) for name in OVERHEAD.values())
    paper, every = "paper metrics (CLI default)", "all metrics"
    model = NAMES.get(cached["figures"]["model"], cached["figures"]["model"])
    return (f"What the head analysis costs on CPU ({model}, random weights; each figure over a plain forward, the "
            f"geometric mean over paired batches with its 95% interval). With glibc keeping freed memory "
            f"({measured_on(cached, OVERHEAD['cached'])}): {ratio(cached, paper)} for the papers' two similarity "
            f"metrics (the CLI default) and {ratio(cached, every)} with `--metrics all`. With glibc's default "
            f"allocator, which page-faults on every fresh map ({measured_on(default, OVERHEAD['default'])}): "
            f"{ratio(default, paper)} and {ratio(default, every)}. `head_similarity` discards the logits, so it runs "
            f"fused attention explicitly and reads its softmax (`AttentionCapture(exact_outputs=False)`; the capture "
            f"alone costs {ratio(cached, 'capture only')}). `AttentionCapture`'s default keeps the logits "
            f"bit-identical and recomputes the maps behind the fused kernel instead: that recomputation alone (a "
            f"batched q·kᵀ GEMM and one exp per layer) costs {ratio(cached, 'recompute alone (exact)')}.")


def overhead_numbers():
    records = {name: benchmark(name) for name in OVERHEAD.values()}
    expected = [measured_on(r, name) for name, r in records.items()]
    for name, r in records.items():
        names = ("paper metrics (CLI default)", "all metrics") + (("capture only", "recompute alone (exact)")
                                                                  if name == OVERHEAD["cached"] else ())
        expected += [ratio(r, n) for n in names]
    return expected


GALLERY = {"00": ("00_shvit_variants", row_00), "01": ("01_speed_accuracy", row_01),
           "02": ("02_macro_design", row_02), "02 frontier": ("02_macro_design_frontier", row_02_frontier),
           "03": ("03_head_redundancy_deit", row_03), "03 query maps": ("03_head_query_maps", row_03_query_maps),
           "04": ("04_head_redundancy_families", row_04), "05": ("05_single_head_designs", row_05),
           "06": ("06_runtime_breakdown", row_06), "07": ("07_gradcam_stem", row_07),
           "08": ("08_claims_scorecard", row_08), "09": ("09_roofline", row_09),
           "09 predictor": ("09_predictor", row_09_predictor), "10": ("10_model_zoo", row_10)}
PROSE = {"meso": ("From scratch it took", meso_paragraph), "meta": ("**Counting without arithmetic.**", meta_paragraph), "roofline": ("What it adds to the anchors", roofline_paragraph), "recipe": ("**The meso recipe", recipe_paragraph),
         "overhead": ("What the head analysis costs on CPU", overhead_numbers),
         "predictor": ("**Calibrated latency predictor, measured.**", predictor_paragraph)}


def readme_line(marker: str) -> str:
    lines = [line for line in (REPO / "README.md").read_text().splitlines() if marker in line]
    assert len(lines) == 1, f"README: {len(lines)} lines contain {marker!r}"
    return lines[0]


def unchecked_numbers(text: str, checked) -> list[str]:
    """The numbers in `text` outside every string of `checked` and the design words."""
    for s in sorted([*checked, *DESIGN_WORDS], key=len, reverse=True):
        text = text.replace(s, " ")
    return re.findall(r"[^\s(]*\d[^\s,;)]*", text)


@pytest.mark.artifacts
@pytest.mark.parametrize("case", [*GALLERY, *PROSE])
def test_readme_quotes_the_committed_results(case):
    if case in GALLERY:
        figure, expect = GALLERY[case]
        line = readme_line(f"(figures/{figure}.png)")
        quoted = line.strip().strip("|").split("|")[3]  # the "we measured" cell: every number in it is checked
    else:
        marker, expect = PROSE[case]
        line = readme_line(marker)
        quoted = line if case == "overhead" else ""
    expected = expect()
    missing = [s for s in expected if s not in line]
    hint = f"\nthe paragraph from the results:\n{overhead_paragraph()}" if case == "overhead" else ""
    assert not missing, f"README {case}: the committed results give {missing}, not found in:\n{line}{hint}"
    assert not unchecked_numbers(quoted, expected), (
        f"README {case}: {unchecked_numbers(quoted, expected)} are not computed from a committed result")


@pytest.mark.artifacts
def test_every_gallery_row_has_a_case():
    shown = re.findall(r"^\|[^|]*\| !\[\]\(figures/([\w.-]+)\.png\)", (REPO / "README.md").read_text(), re.M)
    assert sorted(shown) == sorted(figure for figure, _ in GALLERY.values())


@pytest.mark.artifacts
def test_the_scorecard_timings_are_the_geometric_means_of_their_rounds():
    """Cross-check: the speed-ups rows 02, 05 and 08 quote from claims.csv, recomputed from the rounds tables."""
    def mean_log_ratio(rounds, column, value, over, under):
        wide = rounds.pivot(index="round", columns=column, values=value)
        return float(np.exp(np.log(wide[over] / wide[under]).mean()))

    fig2 = mean_log_ratio(table("02_macro_design_rounds_cpu.csv"), "design", "seconds", "(a)", "(b)")
    cpu = table("05_single_head_throughput.csv").query("runtime == 'cpu'")
    shsa = mean_log_ratio(cpu, "model", "images_per_s", "shvitlab_t6_ratio4_67", "shvitlab_t6_mhsa")
    shares = table("06_runtime_breakdown_rounds_cpu.csv").pivot(index="round", columns="model", values="runtime_share")
    memory = 100 * ((shares[NAMES_BY_SHORT["DeiT-T"]] + shares[NAMES_BY_SHORT["Swin-T"]]) / 2
                    - shares[NAMES_BY_SHORT["EfficientViT-M4"]]).mean()
    assert fig2 == pytest.approx(claim("shvit_fig2_speed@full").ours, rel=1e-4)
    assert shsa == pytest.approx(claim("shvit_t6_mhsa_speed@full").ours, rel=1e-4)
    assert memory == pytest.approx(claim("effvit_fig2_memory_bound@full").ours, abs=1e-3)


def test_numbers_are_written_as_the_readme_writes_them():
    assert fmt(-12.5691) == f"{MINUS}12.6" and fmt(0.166667, sign=True) == "+0.2" and fmt(-0.04, sign=True) == "0.0"
    assert fmt(71.25) == "71.3" and fmt(51.35) == "51.4" and fmt(2.345, 2) == "2.35"  # half up, as typed
    assert within([0.00729, -0.00135]) == "0.8%" and within([0.02149]) == "2.2%"
    assert interval(2.56, -5.01216, 10.1322, sign=True) == f"+2.6 [{MINUS}5.0, 10.1]"
    assert unchecked_numbers("ran 4.02x [3.97, 4.07] on 2 cores (16x16 stem)", ["4.02x [3.97, 4.07]"]) == ["2"]


if __name__ == "__main__":
    print(overhead_paragraph())
