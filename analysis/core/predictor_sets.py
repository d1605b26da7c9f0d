"""The calibrated latency predictor's model sets (issue 30), each with its whole protocol in one place.

A held-out set is scored once, as it was declared in a commit before any of its models was predicted or
timed: its models (`names.PREDICTOR_HELD_OUT_MODELS*`), batch size, input resolutions, whether subnormals are
flushed, and the result files its scoring run keeps. `benchmarks/latency_predictor.py --models KEY` measures a set; notebook 09 reads it.
The tuning models (which design decisions may look at) and figure 09's three models are sets too, never
scored as held out: `tuning` timed with set 5's calibration on its host, `tuning-7` with set 7's. Torch-free, so a CLI's `--help` stays instant.

    >>> s = PREDICTOR_SETS["held-out-5"]
    >>> s.batch_size, s.file("latency")
    (8, '09_predictor_latency_5_cpu.csv')
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Optional

from .names import (PREDICTOR_HELD_OUT_5_BATCH, PREDICTOR_HELD_OUT_5_RESOLUTIONS, PREDICTOR_HELD_OUT_MODELS,
                    PREDICTOR_HELD_OUT_MODELS_2, PREDICTOR_HELD_OUT_MODELS_3, PREDICTOR_HELD_OUT_MODELS_4,
                    PREDICTOR_HELD_OUT_MODELS_5, PREDICTOR_HELD_OUT_MODELS_6, PREDICTOR_HELD_OUT_MODELS_7,
                    PREDICTOR_TUNING_MODELS)

__all__ = ["PredictorSet", "PREDICTOR_SETS", "HELD_OUT_SETS"]


@dataclass(frozen=True)
class PredictorSet:
    """Models predicted and timed together, and where their results go.

    key: the `--models` choice; label: the figure's name for it (held-out sets: "set N, <what changed
    before it>"); files: the result file name with `{table}` (latency, stages, summary, machine, ...) and
    `{device}` (cpu, cuda) left open; resolutions: input side per model where it is not the pretrained config's;
    flush_denormal: calibrated and timed with subnormal floats flushed to zero (`torch.set_flush_denormal`).
    """

    key: str
    label: str
    models: tuple
    files: str
    held_out: bool = True
    batch_size: int = 16
    resolutions: Mapping[str, int] = field(default_factory=dict)
    flush_denormal: bool = False

    def file(self, table: str, device: str = "cpu") -> str:
        """The name of this set's `table` for `device` under results/ (the machine description is JSON)."""
        return self.files.format(table=table, device=device) + (".json" if table == "machine" else ".csv")

    def resolution(self, model: str) -> Optional[int]:
        return self.resolutions.get(model)


PREDICTOR_SETS: Mapping[str, PredictorSet] = MappingProxyType({s.key: s for s in (
    PredictorSet("held-out", "set 1, malloc not pinned", PREDICTOR_HELD_OUT_MODELS, "09_predictor_{table}_{device}"),
    PredictorSet("held-out-2", "set 2, malloc pinned", PREDICTOR_HELD_OUT_MODELS_2, "09_predictor_{table}_2_{device}"),
    PredictorSet("held-out-3", "set 3, page faults per byte", PREDICTOR_HELD_OUT_MODELS_3,
                 "09_predictor_{table}_3_{device}"),
    PredictorSet("held-out-4", "set 4, every block from the heap", PREDICTOR_HELD_OUT_MODELS_4,
                 "09_predictor_{table}_4_{device}"),
    PredictorSet("held-out-5", "set 5, transposed convs timed (batch 8)", PREDICTOR_HELD_OUT_MODELS_5,
                 "09_predictor_{table}_5_{device}", batch_size=PREDICTOR_HELD_OUT_5_BATCH,
                 resolutions=MappingProxyType(PREDICTOR_HELD_OUT_5_RESOLUTIONS)),
    PredictorSet("held-out-6", "set 6, slow kernels re-timed",
                 PREDICTOR_HELD_OUT_MODELS_6, "09_predictor_{table}_6_{device}", flush_denormal=True),
    PredictorSet("held-out-7", "set 7, context factor", PREDICTOR_HELD_OUT_MODELS_7, "09_predictor_{table}_7_{device}",
                 flush_denormal=True),
    PredictorSet("tuning", "tuning models", PREDICTOR_TUNING_MODELS, "09_predictor_tuning_{table}_{device}",
                 held_out=False),
    PredictorSet("tuning-7", "tuning models, set 7's calibration", PREDICTOR_TUNING_MODELS,
                 "09_predictor_tuning_7_{table}_{device}", held_out=False),
    PredictorSet("figure", "SHViT-S4, EfficientViT-M4, DeiT-T", ("shvit_s4", "efficientvit_m4", "deit_tiny_patch16_224"),
                 "09_predictor_figure_{table}_{device}", held_out=False),
)})
HELD_OUT_SETS = tuple(s for s in PREDICTOR_SETS.values() if s.held_out)   # in the order they were declared and scored


if __name__ == "__main__":  # a library module, not a command
    from .errors import not_a_command
    raise SystemExit(not_a_command(__spec__.name))
