"""Memory estimates on the meta device: known answers (a Linear's weights and output), and sizes the machine
cannot hold refused in one line with the estimate before anything is allocated."""
import pytest
import timm
import torch

from analysis.core.errors import UserError
from analysis.core.memory import available_bytes, check_memory, estimate_memory
from analysis.core.models import create_model_at


def test_estimate_known_answer_for_a_tiny_vit():
    est = estimate_memory("vit_tiny_patch16_224", (2, 3, 32, 32), img_size=32, depth=1)
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=1)
    assert est.params == sum(p.numel() * 4 for p in model.parameters())
    # the largest tensor of one block at 2x(4+1) tokens x 192: the MLP's hidden layer, 2 x 5 x 768 floats
    assert est.largest == 2 * 5 * 768 * 4
    assert est.peak() == est.params + 3 * est.largest and est.peak(training=True) > est.peak()


def test_sizes_beyond_the_machine_are_refused_with_the_estimate():
    have = available_bytes()
    assert have > 0
    with pytest.raises(UserError, match=r"deit_tiny_patch16_224 on a 1x3x20000x20000 input needs about .* GB"):
        create_model_at("deit_tiny_patch16_224", 20000)
    with pytest.raises(UserError, match=r"shvit_s1 on a 100000000000x3x224x224 input needs about .*lower the batch"):
        check_memory("shvit_s1", (10**11, 3, 224, 224))
    assert check_memory("shvit_s1", (4, 3, 224, 224)).params > 0      # an ordinary run passes
    assert check_memory("shvit_s1", (10**11, 3, 224, 224), device="meta") is None   # meta allocates nothing


def test_training_sizes_are_checked_before_anything_is_built(tmp_path, capsys):
    from analysis.train import main
    from tests.helpers import assert_rejected

    assert_rejected(main, ["--model", "shvitlab_fig2_b", "--data", "cluttered-digits", "--batch-size", str(10**11),
                           "--output", str(tmp_path / "run")], "needs about", capsys, tmp_path)
    assert not (tmp_path / "run").exists()
