"""The measurement library of the SHViT analysis lab (see README.md).

Five rooms, one concern each:

    analysis.core    model creation, errors, files and tables, paths, images, reference numbers, figure style
    analysis.heads   attention capture, head similarity, head ablation, query maps and rollout
    analysis.cost    macs / bytes per op, module and stage; latency, roofline, runtime breakdown, throughput
    analysis.lab     cluttered digits, training, the micro suite of trained ablations, Grad-CAM / ++ / rollout
    analysis.evidence  intervals, verdict rules fixed before the numbers, the papers' claim scorecard

Their public names are re-exported here and imported on first use (PEP 562), so `import analysis`
and every CLI's `--help` stay instant. The CLIs are the top-level modules
(`python -m analysis.head_similarity`, `analysis.head_ablation`, `analysis.attention_maps`, `analysis.gradcam`,
`analysis.cost`, `analysis.breakdown`, `analysis.roofline`, `analysis.throughput`, `analysis.train`,
`analysis.ablations`, `analysis.make_figures`); a name equal to one of them
(e.g. the function `head_similarity`) is reached through its room: `analysis.heads.head_similarity`.
"""
from . import core, cost, evidence, heads, lab
from ._lazy import lazy_exports
from .core.names import COMMANDS as CLI_MODULES

EXPORTS = {f".{room.__name__.rpartition('.')[2]}{module}": tuple(n for n in names if n not in CLI_MODULES)
           for room in (core, heads, cost, lab, evidence) for module, names in room.EXPORTS.items()}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
