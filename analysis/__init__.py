"""The measurement library of the SHViT analysis lab (see README.md).

Five rooms, one concern each:

    analysis.core    model creation, errors, files and tables, paths, images, intervals, reference numbers, figure style
    analysis.heads   attention capture, head similarity, head ablation, query maps and rollout
    analysis.cost    macs / bytes per op, module and stage; latency, roofline, runtime breakdown, throughput
    analysis.lab     cluttered digits, training, the micro suite of trained ablations, Grad-CAM / ++ / rollout
    analysis.evidence  power, verdict rules fixed before the numbers, the papers' claim scorecard

Each room imports only the rooms above it in that list (heads and cost are side by side): no cycle.

The classes and functions a user calls are re-exported here, as `__init__.pyi` declares (editors and
type checkers read it), and imported on first use, so `import analysis` and every CLI's `--help` stay
instant. The CLIs are the top-level modules (`python -m analysis.head_similarity`, `analysis.head_ablation`,
`analysis.attention_maps`, `analysis.gradcam`, `analysis.cost`, `analysis.breakdown`, `analysis.roofline`,
`analysis.throughput`, `analysis.train`, `analysis.ablations`, `analysis.make_figures`); a function named as
one of them (e.g. `head_similarity`) is reached through its room: `analysis.heads.head_similarity`.
"""
from . import core, cost, evidence, heads, lab
from ._lazy import attach_stub

__getattr__, __dir__, __all__ = attach_stub(__name__)
