"""HeadStatistics: known answers (identical heads -> 1, disjoint supports -> 0, uniform -> log M),
streamed CKA equals a direct computation, single-head layers are not applicable, state is flat."""
import math

import pytest
import timm
import torch

from analysis.heads.attention import AttentionCapture, AttentionMaps
from analysis.heads.metrics import METRICS, HeadStatistics, linear_cka, pairwise_cosine, _mirror_upper_blocks
from analysis.heads.similarity import head_similarity


def _maps(attn, layer="l", windows=1, qpos=None, kpos=None, outputs=None):
    return AttentionMaps(layer=layer, index=0, stage=1, family="test", num_heads=attn.shape[1], attn=attn,
                         batch_size=attn.shape[0] // windows, windows=windows, query_pos=qpos, key_pos=kpos,
                         head_outputs=outputs)


def _value(df, metric, head=None):
    rows = df[(df.metric == metric) & (df["head"].isna() if head is None else df["head"] == head)]
    assert len(rows) == 1
    return rows.value.item()


def micro_deit(**kw):
    torch.manual_seed(0)
    return timm.create_model("deit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=48, depth=3,
                             num_heads=3, num_classes=10, **kw).eval()


@torch.no_grad()
def micro_deit_with_identical_heads(block: int):
    """`micro_deit` with peaky maps (so unrelated heads are clearly dissimilar) whose heads 1 and 2 of
    `block` are copies of head 0 (q, k and v)."""
    model = micro_deit()
    for blk in model.blocks:
        blk.attn.qkv.weight.mul_(4)
    w, b = model.blocks[block].attn.qkv.weight.view(3, 3, 16, 48), model.blocks[block].attn.qkv.bias.view(3, 3, 16)
    w[:, 1:] = w[:, :1]
    b[:, 1:] = b[:, :1]
    return model


def test_identical_heads_give_one_for_that_layer_only():
    model = micro_deit_with_identical_heads(1)
    df = head_similarity(model, [torch.randn(4, 3, 32, 32)])
    layer = {name: g for name, g in df.groupby("layer")}
    for metric in ("mean_pairwise_cosine", "mean_max_cosine", "linear_cka"):
        assert _value(layer["blocks.1.attn"], metric) == pytest.approx(1.0, abs=1e-6)
        for other in ("blocks.0.attn", "blocks.2.attn"):
            assert _value(layer[other], metric) < 0.95
    assert set(df.num_images) == {4} and df.applicable.all()


def test_cosine_of_identical_maps_is_exactly_one_and_never_above():
    """A map's cosine with itself and with a copy is exactly 1.0 (fp32 normalisation gave 1 -/+ 1.2e-7); maps
    that differ by little more than rounding, as random MobileNetV4 heads' near-uniform attention over its 7 x 7
    keys, never pass 1 (unclamped: 1 + 5.7e-6 on the CPU this was written on; 1 + 1.8e-5
    on MobileNetV4), in every cosine metric."""
    for seed in range(3):
        copies = torch.rand(1, 1, 196, 49, generator=torch.Generator().manual_seed(seed)).softmax(-1)
        assert (pairwise_cosine(copies.expand(2, 4, 196, 49)) == 1.0).all()
    near = (1e-5 * torch.randn(2, 4, 196, 49, generator=torch.Generator().manual_seed(0))).softmax(-1)
    cos = pairwise_cosine(near)
    assert cos.max() == 1.0 and cos.min() > 1 - 1e-4 and (cos.diagonal(dim1=1, dim2=2) == 1.0).all()
    stats = HeadStatistics(["mean_pairwise_cosine", "mean_max_cosine"])
    stats.update(_maps(near))
    values = stats.to_frame().value
    assert len(values) == 2 + 4 and values.max() <= 1.0 and values.min() > 1 - 1e-4
    opposite = torch.stack([near[0, 0], -near[0, 0]])[None]  # cosines are clamped below at -1 too
    assert pairwise_cosine(opposite)[0, 0, 1] == -1.0


def test_every_row_names_the_unit_of_its_value():
    """Similarities are fractions (1.0 above: identical heads), entropy is in nats, distance in input px."""
    df = head_similarity(micro_deit(), [torch.randn(2, 3, 32, 32)], metrics=METRICS)
    units = df.groupby("metric").unit.unique().map(tuple).to_dict()
    assert units == {"mean_pairwise_cosine": ("fraction",), "mean_max_cosine": ("fraction",),
                     "max_cosine": ("fraction",), "linear_cka": ("fraction",), "attention_entropy": ("nats",),
                     "mean_attention_distance": ("px",)}
    assert list(df.columns[df.columns.get_loc("value"):][:2]) == ["value", "unit"]


def test_disjoint_supports_give_zero_and_uniform_entropy():
    attn = torch.zeros(2, 2, 4, 8)
    attn[:, 0, :, :4] = 0.25
    attn[:, 1, :, 4:] = 0.25
    stats = HeadStatistics(["mean_pairwise_cosine", "mean_max_cosine", "attention_entropy"])
    stats.update(_maps(attn))
    df = stats.to_frame()
    assert _value(df, "mean_pairwise_cosine") == 0.0
    assert _value(df, "mean_max_cosine") == 0.0
    assert _value(df, "attention_entropy") == pytest.approx(math.log(4))


def test_pairwise_and_max_cosine_against_direct_formula_with_windows():
    torch.manual_seed(1)
    attn = torch.rand(2 * 3, 4, 5, 5).softmax(-1)  # 2 images x 3 windows, 4 heads
    stats = HeadStatistics(["mean_pairwise_cosine", "mean_max_cosine"])
    stats.update(_maps(attn[:3], windows=3))
    stats.update(_maps(attn[3:], windows=3))  # streamed in two batches
    flat = attn.flatten(2)
    cos = torch.nn.functional.cosine_similarity(flat[:, :, None], flat[:, None, :], dim=-1)  # [G, h, h]
    off = ~torch.eye(4, dtype=torch.bool)
    pairwise = torch.stack([c[off].mean() for c in cos]).mean()
    max_cos = torch.stack([c.masked_fill(~off, -2).amax(-1) for c in cos]).mean()
    df = stats.to_frame()
    assert _value(df, "mean_pairwise_cosine") == pytest.approx(pairwise.item(), abs=1e-6)
    assert _value(df, "mean_max_cosine") == pytest.approx(max_cos.item(), abs=1e-6)
    assert set(df.num_images) == {2}


def test_streamed_cka_equals_direct_cka():
    torch.manual_seed(2)
    h, d = 3, 5
    outs = [torch.randn(40, h, d), torch.randn(30, h, d)]
    outs[1][:, 2] = outs[1][:, 0] @ torch.linalg.qr(torch.randn(d, d))[0] * 3  # partly related heads
    stats = HeadStatistics(["linear_cka"])
    for o in outs:
        stats.update(_maps(torch.full((1, h, 2, 2), 0.5), outputs=o))
    x = torch.cat(outs).double()
    x = x - x.mean(0)
    direct = torch.tensor([[((x[:, j].T @ x[:, i]).norm() ** 2 / ((x[:, i].T @ x[:, i]).norm()
                             * (x[:, j].T @ x[:, j]).norm())).item() for j in range(h)] for i in range(h)])
    off = ~torch.eye(h, dtype=torch.bool)
    assert _value(stats.to_frame(), "linear_cka") == pytest.approx(direct[off].mean().item(), abs=1e-6)
    # invariance: an orthogonal map times a scale leaves CKA at 1
    y = torch.randn(100, d)
    z = torch.cat([y, y @ torch.linalg.qr(torch.randn(d, d))[0] * 7], 1)
    cov = torch.cov(z.T.double())
    assert linear_cka(cov, 2)[0, 1].item() == pytest.approx(1.0, abs=1e-9)
    # fp32 rounding never takes CKA past 1: identical heads score exactly 1, like the maps' cosines (a plain
    # fp32 division gives 1 +- 1 ulp for about a third of these seeds)
    for seed in range(10):
        torch.manual_seed(seed)
        cka = linear_cka(torch.cov(torch.randn(50, d).repeat(1, 4).T).float(), 4)
        assert cka.dtype == torch.float32 and (cka == 1.0).all()


def test_single_head_layers_are_not_applicable():
    stats = HeadStatistics()
    stats.update(_maps(torch.full((2, 1, 3, 3), 1 / 3)))
    df = stats.to_frame()
    pairwise = df[df.metric.isin(["mean_pairwise_cosine", "mean_max_cosine", "max_cosine", "linear_cka"])]
    assert len(pairwise) == 4 and pairwise.value.isna().all() and not pairwise.applicable.any()
    assert _value(df, "attention_entropy") == pytest.approx(math.log(3))


def test_mean_attention_distance_known_answer_skips_class_token():
    # 1 class token (no position) + 2 patch tokens 10 px apart
    pos = torch.tensor([[[math.nan, math.nan], [0.0, 0.0], [0.0, 10.0]]])
    attn = torch.tensor([[[[1 / 3, 1 / 3, 1 / 3], [0.5, 0.25, 0.25], [0.0, 0.0, 1.0]]]])
    stats = HeadStatistics(["mean_attention_distance"])
    stats.update(_maps(attn, qpos=pos, kpos=pos))
    # over placed pairs: sum A d = 0.25 * 10, sum A = 0.25 + 0.25 + 0 + 1
    assert _value(stats.to_frame(), "mean_attention_distance") == pytest.approx(2.5 / 1.5)
    # no class token: plain mean over queries of sum_k A d; two windows, two images, streamed
    pos2 = pos[:, 1:].expand(2, -1, -1)
    attn2 = torch.tensor([[0.5, 0.5], [0.0, 1.0]]).expand(4, 1, 2, 2)
    stats = HeadStatistics(["mean_attention_distance"])
    stats.update(_maps(attn2, windows=2, qpos=pos2, kpos=pos2))
    assert _value(stats.to_frame(), "mean_attention_distance") == pytest.approx((5 + 0) / 2)


def test_attention_distance_is_not_applicable_when_no_query_has_a_position():
    """Class attention: the class token's query has no position, so there is no distance to report."""
    kpos = torch.tensor([[[math.nan, math.nan], [0.0, 0.0], [0.0, 10.0]]])
    qpos = torch.full((1, 1, 2), math.nan)
    stats = HeadStatistics(["mean_attention_distance"])
    stats.update(_maps(torch.full((2, 2, 1, 3), 1 / 3), qpos=qpos, kpos=kpos))
    df = stats.to_frame()
    assert len(df) == 3 and not df.applicable.any() and df.value.isna().all()


def test_state_is_flat_in_number_of_images():
    model = micro_deit()
    stats = HeadStatistics()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), AttentionCapture(model, stats.update, head_outputs=True):
        model(x)
        size_one = stats.state_nbytes()
        for _ in range(5):
            model(x)
    assert size_one > 0 and stats.state_nbytes() == size_one
    assert set(stats.to_frame().num_images) == {12}


def test_cache_sized_pieces_give_the_whole_batch_statistics():
    model = micro_deit()
    x = torch.randn(5, 3, 32, 32)
    frames = []
    for chunk_bytes in (None, 1):  # one record per layer vs one per image
        stats = HeadStatistics(chunk_bytes=chunk_bytes)
        with torch.no_grad(), AttentionCapture(model, stats.update, head_outputs=True, chunk_bytes=chunk_bytes):
            model(x)
        frames.append(stats.to_frame())
    whole, pieces = frames
    assert len(whole) > 0 and set(pieces.num_images) == {5}
    assert torch.allclose(torch.tensor(pieces.value.values), torch.tensor(whole.value.values), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("flush_rows", [1, HeadStatistics.FLUSH_ROWS], ids=["flush-each-piece", "flush-at-end"])
def test_batches_under_any_grad_mode_and_to_frame_outside_them(monkeypatch, flush_rows):
    """Batches run under inference mode, no_grad and neither (mixed), `.to_frame()` outside them: the
    same table as all batches under no_grad (up to rounding: with gradients on, the capture recomputes
    the maps with a softmax instead of from the fused kernel's logsumexp)."""
    monkeypatch.setattr(HeadStatistics, "FLUSH_ROWS", flush_rows)
    model = micro_deit()
    x = torch.randn(6, 3, 32, 32)
    modes = [torch.inference_mode, torch.no_grad, torch.enable_grad]
    frames = []
    for per_batch in (modes, [torch.no_grad] * 3):
        stats = HeadStatistics()
        with AttentionCapture(model, stats.update, head_outputs=True, chunk_bytes=stats.chunk_bytes):
            for mode, batch in zip(per_batch, x.split(2)):
                with mode():
                    model(batch)
        frames.append(stats.to_frame())
    mixed, reference = frames
    assert len(reference) > 0 and set(mixed.num_images) == {6}
    assert torch.allclose(torch.tensor(mixed.value.values), torch.tensor(reference.value.values),
                          rtol=1e-6, atol=1e-9)


def test_reductions_do_not_depend_on_when_pending_results_are_flushed(monkeypatch):
    model = micro_deit()
    x = torch.randn(5, 3, 32, 32)
    frames = []
    for rows in (1, HeadStatistics.FLUSH_ROWS):  # reduce after every piece vs once at the end
        monkeypatch.setattr(HeadStatistics, "FLUSH_ROWS", rows)
        frames.append(head_similarity(model, [x[:2], x[2:]]))
    assert len(frames[0]) > 0
    assert torch.allclose(torch.tensor(frames[0].value.values), torch.tensor(frames[1].value.values),
                          rtol=1e-6, atol=1e-9)


def test_entropy_from_log_maps_equals_entropy_from_maps():
    """On CPU flash attention the capture hands over log A with A; entropies from it equal those
    computed with a logarithm of the maps (forced math path: no log maps)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = micro_deit_with_identical_heads(1)
    x = torch.randn(3, 3, 32, 32)
    seen = []
    with torch.no_grad(), sdpa_kernel(SDPBackend.FLASH_ATTENTION), AttentionCapture(model, seen.append, log_maps=True):
        model(x)
    assert all(m.log_attn is not None for m in seen)
    values = {}
    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.MATH):
        with sdpa_kernel(backend):
            values[backend] = head_similarity(model, [x], metrics=["attention_entropy"]).value.values
    assert len(values[backend]) == 4 * 3 and (values[SDPBackend.MATH] > 0).all()
    assert torch.allclose(torch.tensor(values[SDPBackend.FLASH_ATTENTION]), torch.tensor(values[SDPBackend.MATH]),
                          rtol=1e-5)


def test_upper_blocks_mirror_to_the_symmetric_matrix():
    torch.manual_seed(4)
    h, d = 3, 2
    y = torch.randn(10, h * d)
    full = y.T @ y                 # symmetric up to the GEMM kernel's rounding, which varies per CPU
    expected = full.clone()
    for i in range(h):
        for j in range(i):
            expected[i * d:(i + 1) * d, j * d:(j + 1) * d] = full[j * d:(j + 1) * d, i * d:(i + 1) * d].T
    upper = full.clone()
    for i in range(h):
        upper[i * d:(i + 1) * d, :i * d] = float("nan")  # never read
    mirrored = _mirror_upper_blocks(upper, h)
    assert torch.equal(mirrored, expected)
    torch.testing.assert_close(mirrored, full)


def test_low_precision_maps_reduce_in_fp32():
    torch.manual_seed(3)
    attn = torch.rand(4, 3, 16, 16).softmax(-1)
    results = {}
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        stats = HeadStatistics(["mean_pairwise_cosine", "attention_entropy"])
        stats.update(_maps(attn.to(dtype)))
        results[dtype] = stats.to_frame().set_index(["metric", "head"]).value
    for dtype in (torch.bfloat16, torch.float16):
        assert ((results[dtype] - results[torch.float32]).abs() < 1e-2).all()


@pytest.mark.gpu
@pytest.mark.parametrize("amp", [None, torch.float16, torch.bfloat16])
def test_cuda_autocast_matches_cpu(amp):
    model = micro_deit()
    x = torch.randn(4, 3, 32, 32)
    cpu = head_similarity(model, [x]).value
    cuda = head_similarity(model, [x], device="cuda", amp=amp).value
    assert ((cuda - cpu).abs() / cpu.abs().clip(lower=1) < (1e-4 if amp is None else 3e-2)).all()


def test_similarity_per_image_averages_to_the_streamed_statistic_and_is_one_for_identical_heads():
    from analysis.heads.similarity import similarity_per_image

    model = micro_deit_with_identical_heads(2)
    x = torch.randn(5, 3, 32, 32)
    per_image = similarity_per_image(model, x)
    assert per_image.shape == (3, 5)
    df = head_similarity(model, [x], metrics=["mean_pairwise_cosine"])
    assert per_image.mean(1).tolist() == pytest.approx(df.sort_values("layer_index").value.tolist(), abs=1e-6)
    assert per_image[2].tolist() == pytest.approx([1.0] * 5, abs=1e-6)
    assert per_image[:2].max() < 0.95 and per_image[:2].std() > 0  # other layers: real, image-dependent values
