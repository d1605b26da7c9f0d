"""Every analysis leaves the caller's model as it found it: each module's train/eval flag (a model in
training with one frozen, eval-mode submodule, as in fine-tuning) and the device of its tensors."""
import pytest
import timm
import torch

from analysis.cost.counter import CostAnalysis
from analysis.cost.latency import model_latency, stage_latency
from analysis.cost.macro_design import stage_costs
from analysis.cost.throughput import measure_throughput
from analysis.heads.ablation import head_ablation
from analysis.heads.importance import head_importance
from analysis.heads.similarity import head_similarity
from analysis.lab.gradcam import GradCAM, RolloutCAM


def _model():
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, embed_dim=48,
                              num_heads=3, num_classes=10).train()
    model.blocks[0].eval()      # a frozen block, as in fine-tuning
    return model


def _flags(model):
    return [(name, m.training) for name, m in model.named_modules()]


x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
y = torch.tensor([0, 1, 2, 3])
ANALYSES = {
    "head_similarity": lambda m: head_similarity(m, [x]),
    "head_ablation": lambda m: head_ablation(m, [(x, y)]),
    "head_importance": lambda m: head_importance(m, [(x, y)]),
    "cost": lambda m: CostAnalysis(m, torch.zeros(1, 3, 32, 32), fuse=False).total(),
    "model_latency": lambda m: model_latency(m, x, repeats=1, warmup=0),
    "stage_latency": lambda m: stage_latency(m, x, repeats=1, warmup=0),
    "throughput": lambda m: measure_throughput(m, batch_size=2, resolution=32, warmup_s=0, window_s=0, fuse=False),
    "stage_costs": lambda m: stage_costs(m, x, repeats=0, fuse=False),
    "gradcam": lambda m: GradCAM(m, m.blocks[-1].norm1).attribute(x, target=y),
    "rollout": lambda m: RolloutCAM(m).attribute(x),
}


@pytest.mark.parametrize("name", ANALYSES)
def test_the_model_comes_back_as_it_was(name):
    model = _model()
    before, device = _flags(model), next(model.parameters()).device
    assert {t for _, t in before} == {True, False}
    ANALYSES[name](model)
    assert _flags(model) == before and next(model.parameters()).device == device
