"""Throughput in images/s under the SHViT / EfficientViT speed-test protocol.

    >>> measure_throughput(model, device="cpu")          # dict: images_per_s, spread, ...
    >>> model_throughput("shvit_s1", runtime="onnx")     # by name: built, BN-fused, measured
    >>> table2_comparison(window_s=2)                    # ours vs paper Table 2, Spearman in .attrs

Protocol (the papers' `speed_test`): BatchNorm folded (`reparameterize_model`), eval mode,
no grad; GPU: batch 256 under AMP (float16 autocast); CPU: batch 16 on one thread;
ONNX Runtime: batch 16 on the CPU execution provider, one intra-op thread. Each
forward pass is timed on its own (synchronised on CUDA) after a warm-up of `warmup_s`
seconds, for `window_s` seconds (the papers: 10 s and 60 s; the defaults here, 1 s and
3 s, are for interactive use). `images_per_s` is the median over passes of
batch / pass time; `spread` the interquartile range of the same, in images/s.

CLI: `python -m analysis.throughput --model shvit_s1 --model efficientvit_m4 --json` (`analysis/throughput.py`).
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from typing import Iterable, List, Optional

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from scipy.stats import spearmanr
from tqdm import tqdm

from ..core.errors import UserError, not_a_command
from ..core.models import create_model_at, fuse_model, input_size, leaves_model_as_found
from ..core.names import RUNTIMES
from ..core.reference import load_reference
from ..core.runtime import MEASURED_ON, cpu_threads, with_measured_on
from .timing import time_calls

__all__ = ["RUNTIMES", "DEFAULT_BATCH", "ONNX_MISSING", "measure_throughput", "model_throughput", "cuda_graph_forward",
           "table2_comparison", "rank_agreement"]

DEFAULT_BATCH = {"cpu": 16, "cuda": 256, "onnx": 16}
ONNX_MISSING = ("ONNX Runtime is not installed; install the optional extra: pip install 'shvit-analysis-lab[onnx]' "
                 "(onnx, onnxruntime, onnxscript)")


def _summary(times: List[float], batch: int) -> dict:
    ips = batch / np.asarray(times)
    q1, med, q3 = np.percentile(ips, [25, 50, 75])
    return {"images_per_s": round(float(med), 2), "spread": round(float(q3 - q1), 2), "passes": len(times)}


def _onnx_session(model: nn.Module, x: torch.Tensor, threads: int):
    try:
        import onnxruntime as ort  # optional: the [onnx] extra
    except ImportError:
        raise UserError(ONNX_MISSING) from None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        with torch.no_grad(), contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["y"], dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


@leaves_model_as_found
def measure_throughput(model: nn.Module, *, runtime: str = "cpu", batch_size: Optional[int] = None,
                       resolution: Optional[int] = None, threads: Optional[int] = 1, warmup_s: float = 1.0,
                       window_s: float = 3.0, fuse: bool = True, amp: Optional[bool] = None,
                       cuda_graph: bool = False) -> dict:
    """Images/s of `model` under the protocol; the model is fused on a copy (yours is untouched).

    `runtime` is `cpu` (PyTorch, `threads` threads), `cuda` (PyTorch, AMP unless `amp=False`) or
    `onnx` (ONNX Runtime on CPU). `batch_size` defaults to the paper's (16 / 256 / 16);
    `resolution` to the model's pretrained config. `cuda_graph` (cuda only; not the papers'
    protocol) replays the forward pass as one CUDA graph, so that a slow host's kernel launches
    drop out: small models at batch 256 are otherwise launch-bound. Returns the `--json` record.
    """
    if cuda_graph and runtime != "cuda":
        raise ValueError("cuda_graph needs runtime='cuda'")
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    batch = batch_size or DEFAULT_BATCH[runtime]
    c, h, w = input_size(model, resolution)
    net = fuse_model(model) if fuse else model.eval()
    device = "cuda" if runtime == "cuda" else "cpu"
    net = net.to(device)
    x = torch.randn(batch, c, h, w, generator=torch.Generator().manual_seed(0)).to(device)
    use_amp = runtime == "cuda" if amp is None else amp
    record = {"model": getattr(model, "default_cfg", {}).get("architecture", type(model).__name__),
              "device": {"cpu": "cpu", "cuda": _cuda_name(), "onnx": "onnxruntime-cpu"}[runtime],
              "runtime": runtime, "batch_size": batch, "resolution": h,
              "threads": None if runtime == "cuda" else threads, "amp": use_amp, "cuda_graph": cuda_graph}
    record = with_measured_on(record, device)
    if runtime == "onnx":
        sess = _onnx_session(net, x, threads or 1)
        feed = {"x": x.numpy()}
        times = time_calls(lambda: sess.run(None, feed), warmup_s=warmup_s, window_s=window_s, min_calls=3)
    else:
        if cuda_graph:
            step = cuda_graph_forward(net, x, amp=use_amp)[0].replay
        else:
            autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()

            def step():
                with torch.inference_mode(), autocast:
                    net(x)
        with cpu_threads(threads if runtime == "cpu" else None):
            times = time_calls(step, device="cuda" if runtime == "cuda" else "cpu", warmup_s=warmup_s,
                               window_s=window_s, min_calls=3)
    return {**record, **_summary(times, batch), "warmup_s": warmup_s, "window_s": window_s}


def cuda_graph_forward(net: nn.Module, x: torch.Tensor, *, amp: bool) -> tuple:
    """`net(x)` captured as a CUDA graph: `(graph, out)`; `graph.replay()` reruns it on `x`'s storage
    and rewrites `out` in place. Warmed up on a side stream first, as torch.cuda.graphs asks."""
    autocast = (torch.autocast("cuda", dtype=torch.float16, cache_enabled=False) if amp
                else contextlib.nullcontext())
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.inference_mode(), autocast:
        for _ in range(3):
            net(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), autocast, torch.cuda.graph(graph):
        out = net(x)
    return graph, out


def _cuda_name() -> str:
    return f"cuda:{torch.cuda.get_device_name()}" if torch.cuda.is_available() else "cuda"


def model_throughput(name: str, *, runtime: str = "cpu", resolution: Optional[int] = None, seed: int = 0,
               **kwargs) -> dict:
    """`measure_throughput` of a model by name (timm or shvitlab_*), with random weights: speed does not
    depend on them. ViT / Swin are built for `resolution` when it differs from their default."""
    batch = kwargs.get("batch_size") or DEFAULT_BATCH[runtime]
    model, (_, h, _) = create_model_at(name, resolution, seed=seed, batch_size=batch,
                                       device="cuda" if runtime == "cuda" else "cpu")
    return {**measure_throughput(model, runtime=runtime, resolution=h, **kwargs), "model": name}


def table2_comparison(*, window_s: float = 3.0, warmup_s: float = 1.0, names: Optional[Iterable[str]] = None,
                      runtime: str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Our CPU throughput next to paper Table 2 for every row with a timm name.

    Columns: model, timm_name, resolution, paper_macs_m, paper_cpu_img_s, ours_img_s, ours_spread, ratio.
    `.attrs["spearman"]` is `rank_agreement` of our column with the paper's CPU column
    (`runtime="onnx"` compares with the paper's ONNX column instead).
    """
    ref = load_reference("shvit_table2").dropna(subset=["timm_name"])
    if names is not None:
        ref = ref[ref["timm_name"].isin(list(names))]
    paper_col = {"cpu": "cpu_img_s", "onnx": "cpu_onnx_img_s", "cuda": "gpu_img_s"}[runtime]
    rows = []
    for r in tqdm(list(ref.itertuples()), desc="throughput", disable=not progress, file=sys.stderr):
        m = model_throughput(r.timm_name, runtime=runtime, resolution=int(r.resolution), warmup_s=warmup_s,
                       window_s=window_s)
        rows.append({"model": r.model, "timm_name": r.timm_name, "resolution": int(r.resolution),
                     "paper_macs_m": r.macs_m, f"paper_{paper_col}": getattr(r, paper_col),
                     "ours_img_s": m["images_per_s"], "ours_spread": m["spread"],
                     "ratio": m["images_per_s"] / getattr(r, paper_col),
                     **{k: m[k] for k in MEASURED_ON}})
    df = pd.DataFrame(rows)
    df.attrs["spearman"] = rank_agreement(df, "ours_img_s", f"paper_{paper_col}")
    df.attrs["runtime"] = runtime
    return df


def rank_agreement(table: pd.DataFrame, ours_col: str, paper_col: str) -> float:
    """Spearman rank correlation between our throughput column and the paper's: do the models rank alike?

    NaN with fewer than three rows, where any two columns rank alike or opposite by construction.
    """
    if len(table) < 3:
        return float("nan")
    return float(spearmanr(table[ours_col], table[paper_col]).statistic)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
