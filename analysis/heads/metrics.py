"""Streaming head-redundancy statistics over `AttentionMaps` (the metrics and their definitions: below).

`HeadStatistics` is fed one `AttentionMaps` at a time (it is an `AttentionCapture` callback) and keeps,
per layer, only fixed-size fp64 sums: its state does not depend on the number of images, so ImageNet-val
(50,000 images) runs in the memory of one batch. Each metric is a `HeadMetric` plugin, one class that
declares its sums (see `_metric_base`): the builtin `METRICS` are registered below, each class with its
definition; others register with `register_head_metric`, or are passed to `HeadStatistics` as classes.

Pairwise metrics need two heads: for single-head layers (SHViT, SHSA) they are reported
as not applicable (`value` NaN, `applicable` False), never as 1.0. Inputs of any float
dtype (fp16 / bf16 autocast on CUDA) are reduced in fp32 and summed in fp64.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional, Union

import pandas as pd
import torch

from ..core.distributed import World
from ..core.errors import UserError, not_a_command
from ..core.names import HEAD_METRICS
from ._metric_base import (HeadBatch, HeadMetric, LayerCounts, LayerMetrics, Row, head_metric_names,
                           register_head_metric, resolve_head_metrics, unregister_head_metric)
from .attention import AttentionMaps

__all__ = ["HeadStatistics", "METRICS", "pairwise_cosine", "linear_cka", "HeadMetric", "HeadBatch", "Row",
           "LayerCounts", "register_head_metric", "unregister_head_metric", "head_metric_names",
           "resolve_head_metrics", "MeanPairwiseCosine", "MeanMaxCosine", "LinearCKA", "AttentionEntropy",
           "MeanAttentionDistance"]

METRICS = HEAD_METRICS  # the builtin metrics, registered below in this order
_F64 = torch.float64


def pairwise_cosine(attn: torch.Tensor) -> torch.Tensor:
    """[G, h, N, M] maps -> [G, h, h] cosine similarity of the flattened head maps (fp32)."""
    a = attn.flatten(2).float()
    return _cosine_from_gram(a @ a.transpose(1, 2))


def _cosine_from_gram(gram: torch.Tensor) -> torch.Tensor:
    """[G, h, h] Gram matrices of the flattened maps -> their cosines in [-1, 1], in the Gram's dtype. Normalised
    in fp64, where the product of two fp32 squared norms is exact: a map's cosine with a copy of it is exactly 1."""
    g = gram.double()
    sq_norm = g.diagonal(dim1=1, dim2=2).clamp_min(1e-30)
    cos = g / (sq_norm[:, :, None] * sq_norm[:, None, :]).sqrt()
    # rounding: an fp32 Gram puts near-identical maps past 1 (random MobileNetV4 heads: 1 + 1.8e-5)
    return cos.clamp_(-1, 1).to(gram.dtype)


def linear_cka(cov: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[h, h] linear CKA between heads from the (h*d x h*d) covariance of concatenated head outputs: the cosine
    of their HSIC Gram, normalised and clamped as the maps' cosines are (a head's CKA with itself is exactly 1)."""
    d = cov.shape[0] // num_heads
    blocks = cov.reshape(num_heads, d, num_heads, d).permute(0, 2, 1, 3)  # [h, h, d, d]
    return _cosine_from_gram(blocks.pow(2).sum((-2, -1))[None])[0]


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


def _off_diagonal(h: int, device: torch.device) -> torch.Tensor:
    return ~torch.eye(h, dtype=torch.bool, device=device)


def _per_head_rows(key: str, per_head: torch.Tensor) -> Iterable[Row]:
    """The mean over heads, then one row per head."""
    yield Row(key, per_head.mean())
    for i in range(per_head.shape[0]):
        yield Row(key, per_head[i], head=i)


class _MapCosine(HeadMetric):
    """Cosines of the flattened head maps: the per-instance Gram matrices (shared by both cosine metrics)
    are held until `flush`, which turns them into cosines in one batch for `reduce`."""

    def __init__(self, maps: AttentionMaps):
        super().__init__(maps)
        self.pending: list[torch.Tensor] = []

    def update(self, batch: HeadBatch) -> None:
        if self.num_heads > 1:
            self.pending.append(batch.gram)

    def flush(self) -> None:
        if self.pending:
            self.reduce(_cosine_from_gram(torch.cat(self.pending)))  # [G, h, h]
            self.pending.clear()

    def reduce(self, cos: torch.Tensor) -> None:
        raise NotImplementedError


# The builtins replace their keys: running this module again (`python -m`, a reload) registers them anew.
@register_head_metric(replace=True)
class MeanPairwiseCosine(_MapCosine):
    """SHViT Fig. 3: per image (per window for windowed attention), the mean over head pairs i != j of
    cos(vec A_i, vec A_j); averaged."""

    key = "mean_pairwise_cosine"
    unit = "fraction"

    def __init__(self, maps: AttentionMaps):
        super().__init__(maps)
        self.add_state("cos", torch.zeros(self.num_heads, self.num_heads, dtype=_F64, device=self.device))

    def reduce(self, cos: torch.Tensor) -> None:
        self.cos += cos.sum(0, dtype=_F64)

    def rows(self, counts: LayerCounts) -> Iterable[Row]:
        multi = self.num_heads > 1
        off = _off_diagonal(self.num_heads, self.device)
        yield Row(self.key, (self.cos / counts.instances)[off].mean() if multi else 0, applicable=multi)


@register_head_metric(replace=True)
class MeanMaxCosine(_MapCosine):
    """EfficientViT Fig. 4: per head, the max over j != i of the cosine; averaged over heads and images
    (per head: `max_cosine` rows)."""

    key = "mean_max_cosine"
    unit = "fraction"

    def __init__(self, maps: AttentionMaps):
        super().__init__(maps)
        self.add_state("max_cos", torch.zeros(self.num_heads, dtype=_F64, device=self.device))

    def reduce(self, cos: torch.Tensor) -> None:
        cos.diagonal(dim1=1, dim2=2).fill_(-math.inf)  # max over the other heads
        self.max_cos += cos.amax(-1).sum(0, dtype=_F64)

    def rows(self, counts: LayerCounts) -> Iterable[Row]:
        multi = self.num_heads > 1
        per_head = self.max_cos / counts.instances
        yield Row(self.key, per_head.mean() if multi else 0, applicable=multi)
        for i in range(self.num_heads):
            yield Row("max_cosine", per_head[i] if multi else 0, head=i, applicable=multi)


@register_head_metric(replace=True)
class LinearCKA(HeadMetric):
    """Mean over head pairs of linear CKA (Kornblith et al. 2019) between the heads' outputs, tokens of
    all images as samples (from streamed cross-covariances); needs the capture's head outputs."""

    key = "linear_cka"
    unit = "fraction"
    needs_head_outputs = True

    def __init__(self, maps: AttentionMaps):
        super().__init__(maps)
        self.applicable = self.num_heads > 1 and maps.head_outputs is not None
        self.pending: Optional[tuple[torch.Tensor, torch.Tensor]] = None  # fp32 (gram, sum) since the last flush
        if self.applicable:
            width = math.prod(maps.head_outputs.shape[1:])
            self.add_state("out_gram", torch.zeros(width, width, dtype=_F64, device=self.device))  # blocks (i, j >= i)
            self.add_state("out_sum", torch.zeros(width, dtype=_F64, device=self.device))
            self.add_state("tokens", 0)

    def update(self, batch: HeadBatch) -> None:
        """Accumulate the second moments of [tokens, h*d] head outputs: only the blocks (i, j >= i),
        as h products (h(h+1)/2 of the h^2 blocks; CKA needs each pair once)."""
        if not self.applicable or batch.maps.head_outputs is None:
            return
        x, h = batch.maps.head_outputs.detach().float().flatten(1), self.num_heads
        if self.pending is None:
            self.pending = (x.new_zeros(x.shape[1], x.shape[1]), x.new_zeros(x.shape[1]))
        gram, total = self.pending
        d = x.shape[1] // h
        for i in range(h):
            gram[i * d:(i + 1) * d, i * d:].addmm_(x[:, i * d:(i + 1) * d].T, x[:, i * d:])
        total += x.sum(0)
        self.tokens += x.shape[0]

    def flush(self) -> None:
        if self.pending is not None:  # per-piece sums in fp32, running in fp64
            gram, total = self.pending
            self.out_gram += gram.to(_F64)
            self.out_sum += total.to(_F64)
            self.pending = None

    def rows(self, counts: LayerCounts) -> Iterable[Row]:
        value = 0.0
        if self.applicable:
            h, mu = self.num_heads, self.out_sum / self.tokens
            cka = linear_cka(_mirror_upper_blocks(self.out_gram, h) / self.tokens - mu[:, None] * mu[None, :], h)
            value = cka[_off_diagonal(h, self.device)].mean()
        yield Row(self.key, value, applicable=self.applicable)


@register_head_metric(replace=True)
class AttentionEntropy(HeadMetric):
    """Mean over queries of -sum_k A log A, in nats (also per head)."""

    key = "attention_entropy"
    unit = "nats"
    needs_log_maps = True

    def __init__(self, maps: AttentionMaps):
        super().__init__(maps)
        self.add_state("entropy", torch.zeros(self.num_heads, dtype=_F64, device=self.device))
        self.pending: list[torch.Tensor] = []  # [G, h] per update

    def update(self, batch: HeadBatch) -> None:
        self.pending.append(_entropy_sums(batch.attn, batch.maps.log_attn) / batch.attn.shape[2])

    def flush(self) -> None:
        if self.pending:
            self.entropy += torch.cat(self.pending).sum(0, dtype=_F64)
            self.pending.clear()

    def rows(self, counts: LayerCounts) -> Iterable[Row]:
        return _per_head_rows(self.key, self.entropy / counts.instances)


@register_head_metric(replace=True)
class MeanAttentionDistance(HeadMetric):
    """Mean over queries of sum_k A[q, k] |p_q - p_k|, in input pixels (also per head). Tokens without a
    position (class token, window padding) are left out: sum A |p_q - p_k| / sum A over the pairs of
    placed tokens (equal to the plain definition when all are placed). Not applicable where no query has a
    position (class attention, attention pooling)."""

    key = "mean_attention_distance"
    unit = "px"

    def __init__(self, maps: AttentionMaps):
        super().__init__(maps)
        self.add_state("distance", torch.zeros(self.num_heads, dtype=_F64, device=self.device))
        self.add_state("placed", torch.zeros((), dtype=_F64, device=self.device))  # attention on placed pairs
        self.pending: list[torch.Tensor] = []  # [G, h, 2] per update
        self._weights: dict = {}               # position layout -> [W, 2, N*M] (distances, placed pairs)

    def update(self, batch: HeadBatch) -> None:
        if batch.maps.query_pos is not None:
            self.pending.append(self._sums(batch.maps, batch.attn))

    def flush(self) -> None:
        if self.pending:
            sums = torch.cat(self.pending)                                  # [G, h, 2]
            self.distance += (sums[..., 0] / sums[..., 1].clamp_min(1e-30)).sum(0, dtype=_F64)
            self.placed += sums[..., 1].sum(dtype=_F64)
            self.pending.clear()

    def rows(self, counts: LayerCounts) -> Iterable[Row]:
        if self.placed > 0:
            return _per_head_rows(self.key, self.distance / counts.instances)
        return [Row(self.key, 0, applicable=False)] + [Row(self.key, 0, head=i, applicable=False)
                                                       for i in range(self.num_heads)]

    def _sums(self, m: AttentionMaps, attn: torch.Tensor) -> torch.Tensor:
        """[G, h, 2]: per instance and head, sum A * dist and sum A over the query-key pairs that
        both have a position (their ratio is the attention distance, in pixels; with no class
        token or padding, the mean over queries of sum_k A[q, k] * dist(q, k)). Both sums are one
        matrix product over the flattened maps (a single read of A).
        """
        key = (tuple(m.query_pos.shape), tuple(m.key_pos.shape), attn.device)
        if key not in self._weights:
            q, k = m.query_pos.to(attn.device), m.key_pos.to(attn.device)
            dist = torch.cdist(q, k)                                   # [W, N, M], NaN if unplaced
            valid = ~dist.isnan()
            self._weights[key] = torch.stack([dist.nan_to_num(0.0), valid.float()], 1).flatten(2)
        weights = self._weights[key]                                   # [W, 2, N*M]
        w, (g, h) = weights.shape[0], attn.shape[:2]
        if w == 1:  # [2, N*M] @ [N*M, G*h]: the fast orientation on CPU for a 2-column product
            sums = (weights[0] @ attn.reshape(g * h, -1).T).T          # [G*h, 2]
        else:
            sums = torch.einsum("bwhk,wck->bwhc", attn.reshape(g // w, w, h, -1), weights)
        return sums.reshape(g, h, 2)


class HeadStatistics:
    """Accumulate head-redundancy statistics batch by batch; `.to_frame()` gives a tidy table.

        stats = HeadStatistics()
        with AttentionCapture(model, stats.update, head_outputs=stats.needs_head_outputs,
                              chunk_bytes=stats.chunk_bytes, log_maps=stats.needs_log_maps):
            for x in batches:
                model(x)
        df = stats.to_frame()

    Args:
        metrics: registered metric names (`head_metric_names()`; by default the builtin `METRICS`) or
            `HeadMetric` classes, used as given without registering them; `linear_cka` needs the
            capture's `head_outputs=True`. Each layer's rows follow the registration order.
        chunk_bytes: maps per update the capture should hand over (its `chunk_bytes`):
            small enough that the several passes of one update read them from cache.

    The statistics never need autograd: every method that builds or changes them runs under
    `torch.inference_mode`, so batches may run under inference mode, `no_grad` or neither, mixed,
    and `.to_frame()` works outside any of them.
    """

    FLUSH_ROWS = 4096  # per-instance results (a few floats each) held before they are reduced

    def __init__(self, metrics: Iterable[Union[str, type[HeadMetric]]] = METRICS,
                 chunk_bytes: Optional[int] = 4 << 20):
        self.metric_types = resolve_head_metrics(metrics)
        self.metrics = tuple(cls.key for cls in self.metric_types)
        self.chunk_bytes = chunk_bytes
        self._layers: dict[str, LayerMetrics] = {}

    @property
    def needs_head_outputs(self) -> bool:
        return any(cls.needs_head_outputs for cls in self.metric_types)

    @property
    def needs_log_maps(self) -> bool:
        return any(cls.needs_log_maps for cls in self.metric_types)

    def reset(self) -> None:
        self._layers.clear()

    @torch.inference_mode()
    def update(self, m: AttentionMaps) -> None:
        layer = self._layers.get(m.layer)
        if layer is None:
            layer = self._layers[m.layer] = LayerMetrics(m, self.metric_types)
        layer.update(m, self.FLUSH_ROWS)

    def declared_states(self) -> list[tuple[HeadMetric, str]]:
        """(metric, state name) of each declared state of each layer's metrics: what `all_reduce` sums."""
        return [(metric, name) for layer in self._layers.values() for metric in layer.metrics
                for name in metric.states()]

    @torch.inference_mode()
    def all_reduce(self, world: World) -> None:
        """Sum the declared states of every metric, and the layers' counts, over the processes of `world`
        (each saw its share of the images): afterwards every process holds the statistics of all the images."""
        if world.size == 1:
            return
        layers = list(self._layers.values())
        for layer in layers:
            layer.flush()
        layouts = world.gather([(name, layer.layout()) for name, layer in self._layers.items()])
        if any(layout != layouts[0] for layout in layouts):
            raise UserError("the processes saw different attention layers (one had no image?): use at least as "
                            "many images as processes")
        states = self.declared_states()
        values = [getattr(metric, name) for metric, name in states]
        ints = [state for state, v in zip(states, values) if not isinstance(v, torch.Tensor)]
        counts = torch.tensor([n for layer in layers for n in (layer.num_images, layer.instances)]
                              + [v for v in values if not isinstance(v, torch.Tensor)], dtype=_F64)
        world.sum_([counts] + [v for v in values if isinstance(v, torch.Tensor)])
        counts = [int(n) for n in counts.tolist()]  # exact below 2**53
        for layer, images, instances in zip(layers, counts[0::2], counts[1::2]):
            layer.num_images, layer.instances = images, instances
        for (metric, name), n in zip(ints, counts[2 * len(layers):]):
            setattr(metric, name, n)

    def state_nbytes(self) -> int:
        """Bytes held by the declared tensor states (independent of the number of images seen)."""
        values = [getattr(metric, name) for metric, name in self.declared_states()]
        return sum(v.numel() * v.element_size() for v in values if isinstance(v, torch.Tensor))

    def to_frame(self) -> pd.DataFrame:
        """Tidy results: one row per layer x metric (and per layer x head x metric for per-head rows:
        `max_cosine`, `attention_entropy`, `mean_attention_distance`), `value` in the metric's `unit`; not
        applicable: `value` NaN."""
        rows = []
        for layer in self._layers.values():
            layer.flush()
            counts = LayerCounts(layer.num_images, layer.instances)
            rows += [{**layer.meta, "head": row.head, "metric": row.metric,
                      "value": float(row.value) if row.applicable else math.nan, "unit": metric.unit,
                      "applicable": row.applicable,
                      "num_images": layer.num_images} for metric in layer.metrics for row in metric.rows(counts)]
        df = pd.DataFrame(rows, columns=["layer", "layer_index", "stage", "family", "num_heads", "head",
                                         "metric", "value", "unit", "applicable", "num_images"])
        df["head"] = df["head"].astype("Int64")
        return df


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
