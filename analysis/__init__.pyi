"""The top-level namespace: the classes and functions a user calls. Constants and helpers stay in their
rooms (`analysis.core`, `.heads`, `.cost`, `.lab`, `.evidence`). `import X as X`
marks a re-export (PEP 484)."""
from .core.errors import UserError as UserError
from .core.models import create_model as create_model, create_model_at as create_model_at, fuse_model as fuse_model
from .core.distributed import World as World
from .core.images import ImageFolderSource as ImageFolderSource, SampleImages as SampleImages, load_image as load_image
from .core.memory import estimate_memory as estimate_memory
from .core.reference import load_reference as load_reference
from .heads.families import register_attention_family as register_attention_family
from .heads.layers import attention_layers as attention_layers
from .heads.attention import AttentionCapture as AttentionCapture, AttentionMaps as AttentionMaps
from .heads.metrics import HeadStatistics as HeadStatistics
from .heads.similarity import model_head_similarity as model_head_similarity, head_similarity_table as head_similarity_table, similarity_summary as similarity_summary
from .heads.importance import head_importance as head_importance
from .heads.ablation import HeadMask as HeadMask, evaluate_top1 as evaluate_top1
from .heads.maps import query_attention as query_attention, attention_rollout as attention_rollout
from .cost.counter import CostAnalysis as CostAnalysis
from .cost.op_rules import register_macs as register_macs
from .cost.model_cost import analyse as analyse, report as report
from .core.stages import stage_map as stage_map
from .cost.latency import stage_latency as stage_latency, model_latency as model_latency
from .cost.breakdown import runtime_breakdown as runtime_breakdown, breakdown_table as breakdown_table
from .cost.throughput import measure_throughput as measure_throughput, model_throughput as model_throughput
from .cost.roofline import Machine as Machine, measure_machine as measure_machine, model_roofline as model_roofline, validate_roofline as validate_roofline
from .lab.datasets import DigitsConfig as DigitsConfig, ClutteredDigits as ClutteredDigits
from .lab.train import TrainConfig as TrainConfig, fit as fit, evaluate as evaluate, load_checkpoint as load_checkpoint
from .lab.cache import load_or_train as load_or_train
from .lab.gradcam import GradCAM as GradCAM, GradCAMPlusPlus as GradCAMPlusPlus, RolloutCAM as RolloutCAM, pointing_game as pointing_game, localisation as localisation
from .core.intervals import Estimate as Estimate, seeded as seeded, bootstrap as bootstrap
from .evidence.power import detectable_effect as detectable_effect, replicates_needed as replicates_needed
from .evidence.verdicts import verdict as verdict
from .evidence.claims import scorecard as scorecard
