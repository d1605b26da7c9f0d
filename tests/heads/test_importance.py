"""Head importance (Michel et al. 2019) in one backward pass: known answers (a head whose output
projection is zeroed scores 0; gates at 1 leave the logits bit-identical), a finite-difference check
of the gradient, labels vs predictions, the per-layer normalisation, and the head CLI's flag."""
import pandas as pd
import pytest
import timm
import torch

from analysis.core.errors import UserError
from analysis.heads.importance import HeadGates, head_importance
from analysis.head_similarity import main


def tiny_vit(dtype=torch.float32):
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, embed_dim=48,
                              num_heads=3, num_classes=10).eval().to(dtype)
    with torch.no_grad():
        for blk in model.blocks:  # heads that matter: random init keeps attention's share of the residual tiny
            blk.attn.proj.weight.mul_(40)
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(dtype)
    return model, x


def scores(df, metric="head_importance"):
    return df[df.metric == metric].set_index(["layer", "head"])["value"]


def test_gates_at_one_leave_the_logits_bit_identical():
    model, x = tiny_vit()
    with torch.no_grad():
        plain = model(x)
        with HeadGates(model):
            gated = model(x)
    assert torch.equal(plain, gated)


def test_a_head_whose_output_projection_is_zeroed_has_importance_zero():
    model, x = tiny_vit()
    with torch.no_grad():
        model.blocks[0].attn.proj.weight[:, 16:32].zero_()  # head 1 of layer 0 (head_dim 16)
    s = scores(head_importance(model, [x[:3], x[3:]]))
    assert s[("blocks.0.attn", 1)] == 0.0
    assert (s.drop(("blocks.0.attn", 1)) > 0).all()
    assert len(s) == 2 * 3


def test_importance_is_the_loss_slope_in_each_gate_by_finite_differences():
    """One batch: |dL/dxi_h| / images, with L the summed cross-entropy against the model's predictions,
    recomputed by moving each gate by +-eps in float64."""
    model, x = tiny_vit(torch.float64)
    s = scores(head_importance(model, [x]))
    target = model(x).argmax(-1)
    gates = HeadGates(model)
    eps = 2 ** -20  # 1 +- eps exact in the float32 gates
    with gates, torch.no_grad():
        for layer, h in s.index:
            losses = []
            for step in (eps, -eps):
                gates.gates[layer][h] = 1 + step
                losses.append(torch.nn.functional.cross_entropy(model(x), target, reduction="sum").item())
                gates.gates[layer][h] = 1.0
            assert s[(layer, h)] == pytest.approx(abs(losses[0] - losses[1]) / (2 * eps) / len(x), rel=1e-5)


def test_labels_are_used_when_given_and_predictions_otherwise():
    model, x = tiny_vit()
    with torch.no_grad():
        pred = model(x).argmax(-1)
    unlabelled = scores(head_importance(model, [x]))
    assert scores(head_importance(model, [(x, torch.full((6,), -1))])).tolist() == unlabelled.tolist()
    assert scores(head_importance(model, [(x, pred)])).tolist() == pytest.approx(unlabelled.tolist())
    other = scores(head_importance(model, [(x, (pred + 1) % 10)]))
    assert other.tolist() != pytest.approx(unlabelled.tolist())


def test_normalised_scores_have_unit_norm_per_layer_and_no_weight_grads_are_left():
    model, x = tiny_vit()
    df = head_importance(model, [x[:2], x[2:4], x[4:]])
    norms = df[df.metric == "head_importance_normalized"].groupby("layer")["value"].apply(lambda v: (v ** 2).sum())
    assert norms.tolist() == pytest.approx([1.0, 1.0])
    assert set(df.num_images) == {6} and all(p.grad is None for p in model.parameters())


def test_single_head_models_are_refused():
    model = timm.create_model("shvit_s1", num_classes=10).eval()
    with pytest.raises(UserError, match="needs two heads"):
        head_importance(model, [torch.randn(1, 3, 64, 64)])


def test_head_cli_scores_importance_with_the_papers_metrics(tmp_path, capsys):
    out = tmp_path / "h.csv"
    assert main(["--model", "deit_tiny_patch16_224", "--num-images", "2", "--batch-size", "2", "--metrics",
                 "paper,importance", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    imp = df[df.metric == "head_importance"]
    assert len(imp) == 12 * 3 and (imp.value >= 0).all() and set(imp["head"]) == {0, 1, 2}
    assert {"mean_pairwise_cosine", "head_importance_normalized"} <= set(df.metric)
    printed = capsys.readouterr().out
    assert "head importance per layer" in printed and "head similarity per attention layer" in printed
