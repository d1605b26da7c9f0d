"""Every timm model module counted: one model per module, its MACs, parameters and memory traffic, its ops
that no rule counts, and how its total compares with fvcore's. The table is `results/zoo_counts.csv`
(`benchmarks/zoo_counts.py` writes it; `tests/cost/test_zoo.py` re-counts rows of it).

    >>> picks = smallest_models(["shvit", "levit"])          # {'shvit': 'shvit_s1', 'levit': 'levit_128s'}
    >>> table = zoo_counts(picks)                             # one row per model, tidy

Which model: per timm model module (`timm.list_modules()`), the one of its models
(`timm.list_models(module=...)`, timm's own entrypoints: the `shvitlab_*` this project registers are left
out) with the fewest parameters, counted on the meta device (no weights are built); ties go to the first
name in order. A model that cannot be built on meta is no candidate.

How it is counted: random weights (seed 0), one image at the model's pretrained-config input size,
BatchNorm folded (the papers' convention), by `CostAnalysis` on the meta device (seconds), then on real
tensors (`counted_on`: cpu). A model over `REAL_BUDGET` macs (tens of CPU-minutes for its forward and
fvcore's trace on a shared 2-core machine) keeps its meta count (`counted_on`: meta; equal to a real
run's, `tests/cost/test_meta.py`).

fvcore (`FlopCountAnalysis`) traces the same folded model on the same input. It cannot see
`scaled_dot_product_attention` (nor any op it has no handle for), so its reference is its total plus the
attention counted here by shape ("fvcore plus attention by hand"). `fvcore_rel_diff` is ours / reference
- 1; `fvcore_skipped` lists the ops fvcore skipped that have macs here (or that torch does not know),
which is where a difference comes from (e.g. bicubic upsampling: 16 MACs per output here, no handle in
fvcore). fvcore also rounds: an einsum it has no formula for costs what numpy's `einsum_path` prints, 4
significant digits (2,107,392 macs read as 2,107,500), so a model with einsums (MViTv2's and SAM's relative
positions) differs by a few macs; `fvcore_note` then says by how many, to the mac ("einsum rounded by
fvcore: exact is +16 macs"; exact: one product per combination of index values, what the bmm torch runs
counts here). Where fvcore cannot trace the model, or was not run, `fvcore_rel_diff` is empty and
`fvcore_note` says why. A model our counter cannot count has its one-line reason in `error`.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings
from typing import Callable, Iterable, Mapping, Optional

import pandas as pd
import timm
import torch
from tqdm import tqdm

from ..core.errors import not_a_command
from ..core.models import fuse_model
from ..core.tables import write_csv
from .counter import CostAnalysis
from .op_rules import COUNTED, UNSUPPORTED, classify

__all__ = ["ZOO_COLUMNS", "REAL_BUDGET", "smallest_models", "count_model", "zoo_counts"]

ZOO_COLUMNS = ["model", "module", "resolution", "params", "macs", "mem_bytes", "unsupported_ops", "attention_macs",
               "counted_on", "fvcore_macs", "fvcore_rel_diff", "fvcore_skipped", "fvcore_note", "error"]
REAL_BUDGET = 50e9  # macs: a model over it is counted on meta only (equal counts, no arithmetic), fvcore not run


def _timm_models(module: str) -> list:
    """timm's own models of `module` (entrypoints defined in timm, not registered from outside)."""
    return [n for n in timm.list_models(module=module)
            if timm.models.model_entrypoint(n).__module__.startswith("timm.")]


def _meta_params(name: str) -> Optional[int]:
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = timm.create_model(name)
    except Exception:  # noqa: BLE001  a model that cannot be built on meta is no candidate
        return None
    return sum(p.numel() for p in model.parameters())


def smallest_models(modules: Optional[Iterable[str]] = None, *, progress: bool = False) -> dict:
    """{timm module: its model with the fewest parameters} for `modules` (default: every timm module); see the
    module docstring for the rule."""
    modules = list(timm.list_modules() if modules is None else modules)
    picks = {}
    for module in tqdm(modules, desc="smallest model per module", disable=not progress):
        sizes = [(n, _meta_params(n)) for n in _timm_models(module)]
        sizes = [(p, n) for n, p in sizes if p is not None]
        if sizes:
            picks[module] = min(sizes)[1]
    return picks


def _einsum_exact_macs(equation: str, shapes: list) -> Optional[int]:
    """Macs of a two-operand einsum, one product per combination of index values (the bmm torch runs for
    it); None for other einsums (one or three operands, an ellipsis)."""
    terms = equation.replace(" ", "").split("->")[0].split(",")
    if len(terms) != 2 or "." in equation:
        return None
    sizes = {}
    for term, shape in zip(terms, shapes):
        for index, n in zip(term, shape):
            sizes[index] = max(sizes.get(index, 1), n)  # a size-1 (broadcast) dimension takes the other's size
    return math.prod(sizes.values())


def _einsum_rounding(off: list) -> Callable:
    """fvcore's einsum handle, unchanged, that appends to `off` the macs it rounded away (exact - fvcore's) at
    each call whose count is the exact one printed to 4 significant digits, as numpy's `einsum_path` prints
    it (`%.3e` flops) and fvcore reads it back."""
    from fvcore.nn.jit_handles import einsum_flop_jit, get_shape

    def handle(inputs, outputs):
        counted = einsum_flop_jit(inputs, outputs)
        exact = _einsum_exact_macs(inputs[0].toIValue(), [get_shape(v) for v in inputs[1].node().inputs()])
        if exact is not None and counted == math.floor(float(f"{2 * exact:.3e}") / 2):
            off.append(exact - int(counted))
        return counted
    return handle


def _fvcore_total(model, x) -> tuple:
    """(fvcore's total, the ops it skipped {op: calls}, its failure in one line or "", the macs its einsums
    are short of the exact count: `_einsum_rounding`)."""
    from fvcore.nn import FlopCountAnalysis
    logging.disable(logging.WARNING)
    off = []
    try:
        fv = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        fv.set_op_handle("aten::einsum", _einsum_rounding(off))
        return fv.total(), dict(fv.unsupported_ops()), "", sum(off)
    except Exception as e:  # noqa: BLE001  fvcore cannot trace every model (dict outputs, data-dependent code)
        return None, {}, f"fvcore cannot trace it: {type(e).__name__}: {str(e).strip().splitlines()[0][:160]}", 0
    finally:
        logging.disable(logging.NOTSET)


def _counted_here(jit_op: str) -> bool:
    """Whether an op fvcore skipped (`aten::foo`, a TorchScript name) may have macs here: a rule, or an op this
    counter meets only as the ops it decomposes into (`_convolution_mode`: a convolution). The ops both count 0
    (element-wise, softmax, ...) explain no difference; attention is added to fvcore's total by hand."""
    namespace, _, name = jit_op.partition("::")
    if name == "scaled_dot_product_attention":
        return False
    packet = getattr(getattr(torch.ops, namespace, None), name, None)
    overloads = packet.overloads() if packet is not None else []
    return not overloads or classify(getattr(packet, overloads[0])) in (COUNTED, UNSUPPORTED)


def _ops_text(ops: Mapping[str, int]) -> str:
    return ";".join(f"{op}:{n}" for op, n in sorted(ops.items()))


def _counted(name: str, meta: bool) -> tuple:
    """(the row's counts, the BN-folded model, its input) of `name` built and counted on meta or for real."""
    torch.manual_seed(0)
    with torch.device("meta") if meta else contextlib.nullcontext(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fuse_model(timm.create_model(name), inplace=True)
        c, h, w = timm.data.resolve_data_config({}, model=model)["input_size"]
        x = torch.randn(1, c, h, w)
    ca = CostAnalysis(model, x, fuse=False)
    ops = ca.ops()
    return dict(resolution=h if h == w else f"{h}x{w}", params=ca.total("params"), macs=ca.total("macs"),
                mem_bytes=ca.total("mem_bytes"), unsupported_ops=_ops_text(ca.unsupported_ops()),
                attention_macs=int(ops.loc[ops["op"] == "aten.scaled_dot_product_attention", "macs"].sum()),
                counted_on="meta" if meta else "cpu"), model, x


def _one_line(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}" if str(e).strip() else repr(e)


def count_model(name: str, module: str = "", *, fvcore: bool = True, real_budget: float = REAL_BUDGET) -> dict:
    """One row of the zoo table (`ZOO_COLUMNS`) for timm model `name`: counted on meta first; for real, and by
    fvcore, when that count is at most `real_budget` macs (or meta cannot run it)."""
    row = dict.fromkeys(ZOO_COLUMNS, "")
    row.update(model=name, module=module)
    try:
        counts = _counted(name, meta=True)[0]
    except Exception:  # noqa: BLE001  a forward that reads values: counted for real below
        counts = None
    if counts is None or counts["macs"] <= real_budget:
        try:
            counts, model, x = _counted(name, meta=False)
        except Exception as e:  # noqa: BLE001  recorded, not raised: the sweep goes on; tests read `error`
            row["error"] = _one_line(e)
            return row
    row.update(counts)
    if not fvcore:
        return row
    if counts["counted_on"] == "meta":
        row["fvcore_note"] = (f"not run: {counts['macs'] / 1e9:.0f} G macs is over the sweep's budget for a real run "
                              f"({real_budget / 1e9:.0f} G); counted on meta only")
        return row
    total, skipped, why, einsum_off = _fvcore_total(model, x)
    if einsum_off:
        why = f"einsum rounded by fvcore: exact is {einsum_off:+d} macs (numpy's einsum_path: 4 significant digits)"
    row.update(fvcore_skipped=_ops_text({op: n for op, n in skipped.items() if _counted_here(op)}), fvcore_note=why)
    if total is not None:
        row["fvcore_macs"] = int(total)
        row["fvcore_rel_diff"] = row["macs"] / (total + row["attention_macs"]) - 1
    return row


def zoo_counts(models: Mapping[str, str], *, fvcore: bool = True, out=None, progress: bool = False) -> pd.DataFrame:
    """The zoo table: one row per {module: model} of `models` (e.g. `smallest_models()`), columns `ZOO_COLUMNS`.
    With `out` (a CSV path) the table is written there, atomically, after every row, and the models a table
    already there holds are kept, not counted again: a stopped sweep goes on where it was."""
    done = pd.read_csv(out, keep_default_na=False) if out is not None and os.path.exists(out) else None
    rows = [] if done is None else [r for r in done.to_dict("records") if models.get(r["module"]) == r["model"]]
    todo = {m: n for m, n in models.items() if (m, n) not in {(r["module"], r["model"]) for r in rows}}
    bar = tqdm(todo.items(), desc="counting", disable=not progress)
    for module, name in bar:
        bar.set_postfix_str(name)
        rows.append(count_model(name, module, fvcore=fvcore))
        if out is not None:
            write_csv(_table(rows), out, exact=True)
    return _table(rows)


def _table(rows: list) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=ZOO_COLUMNS)
    df["fvcore_rel_diff"] = pd.to_numeric(df["fvcore_rel_diff"], errors="coerce")  # "" where fvcore did not run
    return df


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
