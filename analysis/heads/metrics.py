"""Streaming head-redundancy statistics over `AttentionMaps` (see DESIGN.md, "Metric definitions").

`HeadStatistics` is fed one `AttentionMaps` at a time (it is an `AttentionCapture`
callback) and keeps, per layer, only fixed-size fp64 sums: its state does not depend on
the number of images, so ImageNet-val (50,000 images) runs in the memory of one batch.

Metrics (one row per layer, `head` empty; per-head rows where marked):
  mean_pairwise_cosine   SHViT Fig. 3: per image (per window for windowed attention), the
                         mean over head pairs i != j of cos(vec A_i, vec A_j); averaged.
  mean_max_cosine        EfficientViT Fig. 4: per head, max over j != i of the cosine;
                         averaged over heads and images (per head: `max_cosine`).
  linear_cka             mean over head pairs of linear CKA (Kornblith et al. 2019) between
                         the heads' outputs, tokens of all images as samples (from streamed
                         cross-covariances).
  attention_entropy      mean over queries of -sum_k A log A, in nats (also per head).
  mean_attention_distance  mean over queries of sum_k A[q, k] |p_q - p_k|, in input pixels
                         (also per head). Tokens without a position (class token, window
                         padding) are left out: sum A |p_q - p_k| / sum A over the pairs of
                         placed tokens (equal to the plain definition when all are placed).

Pairwise metrics need two heads: for single-head layers (SHViT, SHSA) they are reported
as not applicable (`value` NaN, `applicable` False), never as 1.0. Inputs of any float
dtype (fp16 / bf16 autocast on CUDA) are reduced in fp32 and summed in fp64.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional

import pandas as pd
import torch

from ..core.distributed import World
from ..core.errors import UserError, not_a_command
from ..core.names import HEAD_METRICS
from .attention import AttentionMaps

__all__ = ["HeadStatistics", "METRICS", "PAIRWISE_METRICS", "pairwise_cosine", "linear_cka"]

METRICS = HEAD_METRICS
PAIRWISE_METRICS = ("mean_pairwise_cosine", "mean_max_cosine", "linear_cka")
_F64 = torch.float64


def pairwise_cosine(attn: torch.Tensor) -> torch.Tensor:
    """[G, h, N, M] maps -> [G, h, h] cosine similarity of the flattened head maps (fp32)."""
    a = attn.flatten(2).float()
    return _cosine_from_gram(a @ a.transpose(1, 2))


def _cosine_from_gram(gram: torch.Tensor) -> torch.Tensor:
    """[G, h, h] Gram matrices of the flattened maps -> their cosine similarities."""
    norm = gram.diagonal(dim1=1, dim2=2).clamp_min(1e-30).sqrt()
    return gram / (norm[:, :, None] * norm[:, None, :])


def linear_cka(cov: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[h, h] linear CKA between heads from the (h*d x h*d) covariance of concatenated head outputs."""
    d = cov.shape[0] // num_heads
    blocks = cov.reshape(num_heads, d, num_heads, d).permute(0, 2, 1, 3)  # [h, h, d, d]
    hsic = blocks.pow(2).sum((-2, -1))
    self_norm = hsic.diagonal().clamp_min(1e-30).sqrt()
    return hsic / (self_norm[:, None] * self_norm[None, :])


def _entropy_sums(attn: torch.Tensor, log_attn: Optional[torch.Tensor] = None) -> torch.Tensor:
    """[G, h, N, M] -> [G, h] sum over the map of -A log A (0 log 0 = 0): N x the mean over queries.

    One dot product per map, taken as the diagonal of a small batched matmul (far faster on CPU
    than an elementwise x log x or h separate dot products). `log_attn`: log A where the capture
    has it (exact, and no logarithm to take); masked entries (log A = -inf, A = 0) count 0.
    """
    g, h = attn.shape[:2]
    a = attn.reshape(g, h, -1)
    if log_attn is not None:
        sums = -(a @ log_attn.float().reshape(g, h, -1).transpose(1, 2)).diagonal(dim1=1, dim2=2)
        if sums.isfinite().all():
            return sums
        # a masked entry (-inf * 0 = NaN): fall through to the logarithm of the map
    log_a = (a + 1e-30).log_()  # exact for every entry above ~1e-23
    return -(a @ log_a.transpose(1, 2)).diagonal(dim1=1, dim2=2)


def _mirror_upper_blocks(gram: torch.Tensor, num_heads: int) -> torch.Tensor:
    """The symmetric matrix whose (i, j >= i) blocks of size d x d are those of `gram`."""
    d = gram.shape[0] // num_heads
    blocks = gram.reshape(num_heads, d, num_heads, d).permute(0, 2, 1, 3)          # [h, h, d, d]
    lower = torch.ones(num_heads, num_heads, dtype=torch.bool, device=gram.device).tril(-1)[:, :, None, None]
    full = torch.where(lower, blocks.transpose(0, 1).transpose(-2, -1), blocks)
    return full.permute(0, 2, 1, 3).reshape(gram.shape)


class _LayerState:
    """Running sums of one layer: fixed-size fp64 totals, plus the small per-instance results of
    the last few updates, reduced into the totals together (`flush`): one reduction per many
    cache-sized pieces keeps the per-piece work to a product or two."""

    def __init__(self, m: AttentionMaps, device: torch.device):
        h = m.num_heads
        self.meta = dict(layer=m.layer, layer_index=m.index + 1, stage=m.stage, family=m.family, num_heads=h)
        self.num_images = 0
        self.instances = 0                      # images x windows
        self.cos = torch.zeros(h, h, dtype=_F64, device=device)
        self.max_cos = torch.zeros(h, dtype=_F64, device=device)
        self.entropy = torch.zeros(h, dtype=_F64, device=device)
        self.distance = torch.zeros(h, dtype=_F64, device=device)
        self.tokens = 0
        self.out_sum: Optional[torch.Tensor] = None   # [h*d]
        self.out_gram: Optional[torch.Tensor] = None  # [h*d, h*d], blocks (i, j >= i) filled
        self.pending: dict[str, list] = {"gram": [], "entropy": [], "distance": []}
        self.pending_rows = 0
        self.pending_out: Optional[tuple[torch.Tensor, torch.Tensor]] = None  # fp32 (gram, sum)

    def add_head_outputs(self, x: torch.Tensor, num_heads: int) -> None:
        """Accumulate the second moments of [tokens, h*d] head outputs: only the blocks (i, j >= i),
        as h products (h(h+1)/2 of the h^2 blocks; CKA needs each pair once)."""
        if self.pending_out is None:
            width = x.shape[1]
            self.pending_out = (x.new_zeros(width, width), x.new_zeros(width))
        gram, total = self.pending_out
        d = x.shape[1] // num_heads
        for i in range(num_heads):
            gram[i * d:(i + 1) * d, i * d:].addmm_(x[:, i * d:(i + 1) * d].T, x[:, i * d:])
        total += x.sum(0)
        self.tokens += x.shape[0]

    @torch.inference_mode()
    def flush(self) -> None:
        """Reduce the pending per-instance results into the fp64 totals."""
        if self.pending["gram"]:
            cos = _cosine_from_gram(torch.cat(self.pending["gram"]))        # [G, h, h]
            self.cos += cos.sum(0, dtype=_F64)
            cos.diagonal(dim1=1, dim2=2).fill_(-math.inf)  # max over the other heads
            self.max_cos += cos.amax(-1).sum(0, dtype=_F64)
        if self.pending["entropy"]:
            self.entropy += torch.cat(self.pending["entropy"]).sum(0, dtype=_F64)
        if self.pending["distance"]:
            sums = torch.cat(self.pending["distance"])                      # [G, h, 2]
            self.distance += (sums[..., 0] / sums[..., 1].clamp_min(1e-30)).sum(0, dtype=_F64)
        if self.pending_out is not None:  # per-piece sums in fp32, running in fp64
            gram, total = (t.to(_F64) for t in self.pending_out)
            if self.out_gram is None:
                self.out_gram, self.out_sum = gram, total
            else:
                self.out_gram += gram
                self.out_sum += total
            self.pending_out = None
        for results in self.pending.values():
            results.clear()
        self.pending_rows = 0

    def tensors(self) -> list[torch.Tensor]:
        self.flush()
        return [t for t in (self.cos, self.max_cos, self.entropy, self.distance, self.out_sum, self.out_gram)
                if t is not None]


class HeadStatistics:
    """Accumulate head-redundancy statistics batch by batch; `.to_frame()` gives a tidy table.

        stats = HeadStatistics()
        with AttentionCapture(model, stats.update, head_outputs=stats.needs_head_outputs,
                              chunk_bytes=stats.chunk_bytes, log_maps=stats.needs_log_maps):
            for x in batches:
                model(x)
        df = stats.to_frame()

    Args:
        metrics: subset of `METRICS` to compute (all by default); `linear_cka` needs the
            capture's `head_outputs=True`.
        chunk_bytes: maps per update the capture should hand over (its `chunk_bytes`):
            small enough that the several passes of one update read them from cache.

    The statistics never need autograd: every method that builds or changes them runs under
    `torch.inference_mode`, so batches may run under inference mode, `no_grad` or neither, mixed,
    and `.to_frame()` works outside any of them.
    """

    FLUSH_ROWS = 4096  # per-instance results (a few floats each) held before they are reduced

    def __init__(self, metrics: Iterable[str] = METRICS, chunk_bytes: Optional[int] = 4 << 20):
        self.metrics = tuple(metrics)
        self.chunk_bytes = chunk_bytes
        unknown = set(self.metrics) - set(METRICS)
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; known: {', '.join(METRICS)}")
        self._cosine = bool({"mean_pairwise_cosine", "mean_max_cosine"} & set(self.metrics))
        self._layers: dict[str, _LayerState] = {}
        self._distance_cache: dict = {}

    @property
    def needs_head_outputs(self) -> bool:
        return "linear_cka" in self.metrics

    @property
    def needs_log_maps(self) -> bool:
        return "attention_entropy" in self.metrics

    def reset(self) -> None:
        self._layers.clear()

    @torch.inference_mode()
    def all_reduce(self, world: World) -> None:
        """Sum the running statistics over the processes of `world` (each saw its share of the
        images): afterwards every process holds the statistics of all the images."""
        if world.size == 1:
            return
        states = list(self._layers.values())
        tensors = [s.tensors() for s in states]  # flushed
        layouts = world.gather([(name, s.out_gram is not None) for name, s in self._layers.items()])
        if any(layout != layouts[0] for layout in layouts):
            raise UserError("the processes saw different attention layers (one had no image?): use at least as "
                            "many images as processes")
        counts = torch.tensor([[s.num_images, s.instances, s.tokens] for s in states], dtype=torch.float64)
        world.sum_([counts] + [t for ts in tensors for t in ts])
        for s, (images, instances, tokens) in zip(states, counts.tolist()):
            s.num_images, s.instances, s.tokens = int(images), int(instances), int(tokens)

    def state_nbytes(self) -> int:
        """Bytes held by the running sums (independent of the number of images seen)."""
        return sum(t.numel() * t.element_size() for s in self._layers.values() for t in s.tensors())

    @torch.inference_mode()
    def update(self, m: AttentionMaps) -> None:
        attn = m.attn.detach().float()
        state = self._layers.get(m.layer)
        if state is None:
            state = self._layers[m.layer] = _LayerState(m, attn.device)
        g, h = attn.shape[:2]
        state.num_images += m.batch_size
        state.instances += g
        if h > 1 and self._cosine:
            flat = attn.reshape(g, h, -1)
            state.pending["gram"].append(flat @ flat.transpose(1, 2))     # [g, h, h]
        if "attention_entropy" in self.metrics:
            state.pending["entropy"].append(_entropy_sums(attn, m.log_attn) / attn.shape[2])
        if "mean_attention_distance" in self.metrics and m.query_pos is not None:
            state.pending["distance"].append(self._distance_sums(m, attn))
        if h > 1 and self.needs_head_outputs and m.head_outputs is not None:
            state.add_head_outputs(m.head_outputs.detach().float().flatten(1), h)
        state.pending_rows += g
        if state.pending_rows >= self.FLUSH_ROWS:
            state.flush()

    def _distance_sums(self, m: AttentionMaps, attn: torch.Tensor) -> torch.Tensor:
        """[G, h, 2]: per instance and head, sum A * dist and sum A over the query-key pairs that
        both have a position (their ratio is the attention distance, in pixels; with no class
        token or padding, the mean over queries of sum_k A[q, k] * dist(q, k)). Both sums are one
        matrix product over the flattened maps (a single read of A).
        """
        key = (m.layer, tuple(m.query_pos.shape), tuple(m.key_pos.shape), attn.device)
        if key not in self._distance_cache:
            q, k = m.query_pos.to(attn.device), m.key_pos.to(attn.device)
            dist = torch.cdist(q, k)                                   # [W, N, M], NaN if unplaced
            valid = ~dist.isnan()
            self._distance_cache[key] = torch.stack([dist.nan_to_num(0.0), valid.float()], 1).flatten(2)
        weights = self._distance_cache[key]                            # [W, 2, N*M]
        w, (g, h) = weights.shape[0], attn.shape[:2]
        if w == 1:  # [2, N*M] @ [N*M, G*h]: the fast orientation on CPU for a 2-column product
            sums = (weights[0] @ attn.reshape(g * h, -1).T).T          # [G*h, 2]
        else:
            sums = torch.einsum("bwhk,wck->bwhc", attn.reshape(g // w, w, h, -1), weights)
        return sums.reshape(g, h, 2)

    def to_frame(self) -> pd.DataFrame:
        """Tidy results: one row per layer x metric (and per layer x head x metric for
        `max_cosine`, `attention_entropy`, `mean_attention_distance`)."""
        rows = []
        for s in self._layers.values():
            s.flush()
            h, n = s.meta["num_heads"], s.instances

            def add(metric, value, head=None, applicable=True):
                rows.append({**s.meta, "head": head, "metric": metric,
                             "value": float(value) if applicable else math.nan,
                             "applicable": applicable, "num_images": s.num_images})

            multi = h > 1
            off = ~torch.eye(h, dtype=torch.bool, device=s.cos.device)
            if "mean_pairwise_cosine" in self.metrics:
                add("mean_pairwise_cosine", (s.cos / n)[off].mean() if multi else 0, applicable=multi)
            if "mean_max_cosine" in self.metrics:
                per_head = s.max_cos / n
                add("mean_max_cosine", per_head.mean() if multi else 0, applicable=multi)
                for i in range(h):
                    add("max_cosine", per_head[i] if multi else 0, head=i, applicable=multi)
            if "linear_cka" in self.metrics:
                ok = multi and s.out_gram is not None
                value = 0.0
                if ok:
                    mu = s.out_sum / s.tokens
                    cka = linear_cka(_mirror_upper_blocks(s.out_gram, h) / s.tokens - mu[:, None] * mu[None, :], h)
                    value = cka[off].mean()
                add("linear_cka", value, applicable=ok)
            for metric, sums in (("attention_entropy", s.entropy), ("mean_attention_distance", s.distance)):
                if metric in self.metrics:
                    per_head = sums / n
                    add(metric, per_head.mean())
                    for i in range(h):
                        add(metric, per_head[i], head=i)
        df = pd.DataFrame(rows, columns=["layer", "layer_index", "stage", "family", "num_heads", "head",
                                         "metric", "value", "applicable", "num_images"])
        df["head"] = df["head"].astype("Int64")
        return df


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
