"""Head metrics as plugins: the `HeadMetric` base class and its registry, exported by `heads.metrics`.

A metric is one class, instantiated once per attention layer. It declares each running state once,
with how it reduces across processes (as torchmetrics' `add_state(..., dist_reduce_fx=...)`):
`HeadStatistics.all_reduce` sums exactly the declared states, so no state can be left out.

    @register_head_metric
    class MeanMaxAttention(HeadMetric):
        key = "mean_max_attention"

        def __init__(self, maps):
            super().__init__(maps)
            self.add_state("total", torch.zeros(self.num_heads, dtype=torch.float64, device=self.device))

        def update(self, batch):
            self.total += batch.attn.amax(-1).mean(-1).sum(0, dtype=torch.float64)

        def rows(self, counts):
            yield Row(self.key, (self.total / counts.instances).mean())

Registered metrics are chosen by key (`HeadStatistics(["mean_max_attention"])`); a class passed
directly is used as given, registered or not (a scoped choice that leaves the registry alone).
"""
from __future__ import annotations

import functools
from typing import Any, ClassVar, Iterable, NamedTuple, Optional, Union

import torch

from ..core.errors import UserError, not_a_command
from .attention import AttentionMaps

__all__ = ["HeadMetric", "HeadBatch", "Row", "LayerCounts", "register_head_metric", "unregister_head_metric",
           "head_metric_names", "resolve_head_metrics"]

REDUCTIONS = ("sum",)  # what `World` all-reduces


class Row(NamedTuple):
    """One result of a metric: a layer-level row (`head` None) or a per-head one. Not applicable
    (e.g. a pairwise metric of a single-head layer) is reported as `value` NaN."""
    metric: str
    value: Any  # a number or a 0-d tensor
    head: Optional[int] = None
    applicable: bool = True


class LayerCounts(NamedTuple):
    """What one layer has seen: images, and instances (images x windows) that metrics average over."""
    num_images: int
    instances: int


class HeadBatch:
    """One update of a layer as its metrics share it: the maps (`maps`, an `AttentionMaps`), the
    fp32 maps `attn` [G, h, N, M] and intermediates computed once, on first use, for all metrics."""

    def __init__(self, maps: AttentionMaps):
        self.maps = maps
        self.attn = maps.attn.detach().float()

    @property
    def num_instances(self) -> int:
        return self.attn.shape[0]

    @functools.cached_property
    def gram(self) -> torch.Tensor:
        """[G, h, h] Gram matrices of the flattened head maps."""
        flat = self.attn.reshape(*self.attn.shape[:2], -1)
        return flat @ flat.transpose(1, 2)


class HeadMetric:
    """A head statistic of one attention layer, built from the layer's first `AttentionMaps`.

    Subclasses set `key` (the metric's stable name) and `unit` (what its values are measured in, the
    table's `unit` column: "fraction" for similarities in [0, 1], "nats", "px", ...), declare their running states in `__init__`
    with `add_state`, accumulate them in `update(batch)` (a `HeadBatch`) and give their results as
    `Row`s in `rows(counts)` (a `LayerCounts`). `flush` reduces results held back by `update` into
    the states: it runs every `HeadStatistics.FLUSH_ROWS` instances and before any state is read.
    `needs_head_outputs` / `needs_log_maps` ask the capture for `AttentionMaps.head_outputs` / `log_attn`.
    """

    key: ClassVar[str] = ""
    unit: ClassVar[str] = ""
    needs_head_outputs: ClassVar[bool] = False
    needs_log_maps: ClassVar[bool] = False

    def __init__(self, maps: AttentionMaps):
        self.num_heads = maps.num_heads
        self.device = maps.attn.device
        self._reductions: dict[str, str] = {}

    def add_state(self, name: str, default: Union[torch.Tensor, int], reduce: str = "sum") -> None:
        """Declare the running state `self.<name>` (a tensor of fixed shape, or an int count) and how it
        reduces across processes. Only declared states survive `HeadStatistics.all_reduce`."""
        if reduce not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}.{name}: reduce={reduce!r}; supported: {', '.join(REDUCTIONS)}")
        if not isinstance(default, (torch.Tensor, int)):
            raise TypeError(f"{type(self).__name__}.{name}: a state is a tensor or an int, "
                            f"not {type(default).__name__}")
        if name in self._reductions or hasattr(self, name):
            raise ValueError(f"{type(self).__name__}: state {name!r} declared twice or shadows an attribute")
        self._reductions[name] = reduce
        setattr(self, name, default)

    def states(self) -> dict[str, Union[torch.Tensor, int]]:
        """The declared states by name, in declaration order."""
        return {name: getattr(self, name) for name in self._reductions}

    def update(self, batch: HeadBatch) -> None:
        """Accumulate one update of the layer (or hold per-instance results back until `flush`)."""
        raise NotImplementedError

    def flush(self) -> None:
        """Reduce results held back by `update` into the declared states (none by default)."""

    def rows(self, counts: LayerCounts) -> Iterable[Row]:
        """The results, from the declared states (flushed) and what the layer has seen."""
        raise NotImplementedError


class LayerMetrics:
    """The metrics of one attention layer and what it has seen. Per-instance results are held by the
    metrics and reduced together (`flush`) every `HeadStatistics.FLUSH_ROWS` instances: one reduction
    per many cache-sized pieces keeps the per-piece work to a product or two."""

    def __init__(self, m: AttentionMaps, metrics: Iterable[type[HeadMetric]]):
        self.meta = dict(layer=m.layer, layer_index=m.index + 1, stage=m.stage, family=m.family, num_heads=m.num_heads)
        self.num_images = self.instances = self.pending_rows = 0
        self.metrics = [cls(m) for cls in metrics]

    def update(self, m: AttentionMaps, flush_rows: int) -> None:
        batch = HeadBatch(m)
        self.num_images += m.batch_size
        self.instances += batch.num_instances
        for metric in self.metrics:
            metric.update(batch)
        self.pending_rows += batch.num_instances
        if self.pending_rows >= flush_rows:
            self.flush()

    @torch.inference_mode()
    def flush(self) -> None:
        for metric in self.metrics:
            metric.flush()
        self.pending_rows = 0

    def layout(self) -> list:
        """The declared states' names and shapes (ints: None), which every process must share."""
        return [(metric.key, [(name, tuple(v.shape) if isinstance(v, torch.Tensor) else None)
                              for name, v in metric.states().items()]) for metric in self.metrics]


_REGISTRY: dict[str, type[HeadMetric]] = {}


def _checked(cls: Any) -> type[HeadMetric]:
    if not (isinstance(cls, type) and issubclass(cls, HeadMetric)):
        raise TypeError(f"a head metric is a HeadMetric subclass, not {cls!r}")
    if not (isinstance(cls.key, str) and cls.key):
        raise TypeError(f"{cls.__name__} has no `key`")
    if not (isinstance(cls.unit, str) and cls.unit):
        raise TypeError(f"{cls.__name__} has no `unit` (what its values are measured in, e.g. 'fraction', 'nats')")
    return cls


def register_head_metric(cls: Optional[type[HeadMetric]] = None, *, replace: bool = False):
    """Register a `HeadMetric` subclass under its `key` (a decorator, bare or called with `replace`).
    A key already registered is refused unless `replace=True` (which keeps the key's place in the order)."""
    def register(cls: type[HeadMetric]) -> type[HeadMetric]:
        _checked(cls)
        if cls.key in _REGISTRY and not replace:
            raise ValueError(f"a head metric {cls.key!r} is already registered ({_REGISTRY[cls.key].__qualname__}); "
                             "pass replace=True to replace it")
        _REGISTRY[cls.key] = cls
        return cls
    return register if cls is None else register(cls)


def unregister_head_metric(key: str) -> type[HeadMetric]:
    """Remove the metric registered under `key`; returns its class."""
    if key not in _REGISTRY:
        raise UserError(f"unknown head metric {key!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY.pop(key)


def head_metric_names() -> tuple[str, ...]:
    """The registered keys, in registration order (the order of the rows of each layer)."""
    return tuple(_REGISTRY)


def resolve_head_metrics(metrics: Iterable[Union[str, type[HeadMetric]]]) -> tuple[type[HeadMetric], ...]:
    """Classes for `metrics` (registered keys, or `HeadMetric` subclasses used as given), one per key, in
    registration order (by key) and then as given. An unknown key is a `UserError`."""
    chosen: dict[str, type[HeadMetric]] = {}
    for metric in metrics:
        if isinstance(metric, str):
            if metric not in _REGISTRY:
                raise UserError(f"unknown head metric {metric!r}; known: {', '.join(_REGISTRY)}")
            metric = _REGISTRY[metric]
        cls = _checked(metric)
        if chosen.setdefault(cls.key, cls) is not cls:
            raise ValueError(f"two head metrics named {cls.key!r}: {chosen[cls.key].__qualname__} and "
                             f"{cls.__qualname__}")
    order = {key: i for i, key in enumerate(_REGISTRY)}
    return tuple(sorted(chosen.values(), key=lambda c: order.get(c.key, len(order))))


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
