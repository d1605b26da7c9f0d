"""timm's plain and pyramid ViT families (analysis.heads._families_vit): with fused attention left on, the
capture's maps equal timm's own `AttentionExtract` with fused attention off (or a hand recomputation
where timm's extractor cannot reach the map), logits stay bit-identical, token positions are where the
architecture puts them, head similarity runs end to end, and XCiT is refused in one line saying why."""
import pytest
import timm
import torch
from timm.utils import AttentionExtract

from analysis.core.errors import UserError
from analysis.heads.ablation import HeadMask
from analysis.heads.attention import AttentionCapture
from analysis.heads.layers import UnsupportedModelError, attention_layers
from analysis.heads.similarity import head_similarity
from tests.helpers import assert_rejected, randomize_batchnorm

# SAM ViT, small: a window block (14 x 14 patches zero-padded to 2 x 2 windows of 8 x 8) then a global block
SAM = dict(depth=2, global_attn_indexes=[1], window_size=8, embed_dim=96, num_heads=3)
# Gemma 4's encoder, small: one block, 2 query heads sharing 1 key head, 6 x 6 patches of 16 px
GEMMA4 = dict(depth=1, embed_dim=64, num_heads=2, head_dim=32, num_kv_heads=1, intermediate_size=128, global_pool="avg")
# (model, kwargs, input side, oracle): the smallest config of each family, fewer blocks where timm allows.
# oracle "hook": AttentionExtract on every attn_drop (the softmax's output in eval); "fx": on every
# traced softmax node (modules without attn_drop after the softmax); "hiera": by hand (Hiera does not trace).
CASES = [
    ("deit3_small_patch16_224", dict(depth=2), 224, "hook"),
    ("pit_ti_224", {}, 224, "hook"),
    ("vitamin_small_224", {}, 224, "hook"),
    ("beit_base_patch16_224", dict(depth=2), 224, "hook"),
    ("eva02_tiny_patch14_224", dict(depth=2), 224, "hook"),
    ("vit_small_patch16_rope_224", dict(depth=2), 224, "hook"),
    ("vit_relpos_small_patch16_224", dict(depth=2), 224, "hook"),
    ("cait_xxs24_224", dict(depth=2, depth_token_only=1), 224, "fx"),
    ("pvt_v2_b0", {}, 224, "hook"),
    ("pvt_v2_b2_li", dict(depths=(1, 1, 1, 1)), 224, "hook"),
    ("twins_svt_small", dict(depths=(2, 2, 2, 2)), 224, "hook"),
    ("twins_pcpvt_small", dict(depths=(1, 1, 1, 1)), 224, "hook"),
    ("crossvit_tiny_240", {}, 240, "hook"),
    ("tnt_s_patch16_224", dict(depth=2), 224, "hook"),
    ("mvitv2_tiny", {}, 224, "fx"),
    ("hiera_tiny_224", {}, 224, "hiera"),
    ("vit_tiny_patch16_224", dict(depth=1, global_pool="map"), 224, "fx"),  # AttentionPoolLatent
    ("visformer_tiny", dict(depth=(1, 1, 1)), 224, "hook"),
    ("samvit_base_patch16_224", SAM, 224, "hook"),  # heads folded into the batch: [B * windows * heads, N, N]
    ("nest_tiny", {}, 224, "hook"),                 # [B, heads, blocks, N, N]
    ("vit_pwee_patch16_reg1_gap_256", dict(depth=2), 256, "hook"),  # parallel blocks: attention inside the block
    ("sam2_hiera_tiny", {}, 224, "fx"),
    ("gemma4_vit_167m_enc", GEMMA4, 96, "hook"),  # RoPE, scale 1, one key head repeated to both query heads
]
SLOW = {"crossvit_tiny_240", "vitamin_small_224", "beit_base_patch16_224", "mvitv2_tiny", "hiera_tiny_224",
        "twins_svt_small", "twins_pcpvt_small", "nest_tiny", "sam2_hiera_tiny"}
PARAMS = [pytest.param(*c, id=c[0], marks=pytest.mark.slow if c[0] in SLOW else ()) for c in CASES]


def _build(name, kwargs):
    torch.manual_seed(0)
    return randomize_batchnorm(timm.create_model(name, **kwargs)).eval()


def _set_fused(model, on):
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = on


def _hiera_maps(model, x):
    """Hiera's maps by hand from each MaskUnitAttention's input: qkv, mask units, q max-pooling, softmax."""
    calls, maps = {}, {}
    handles = [m.register_forward_pre_hook(lambda m, a, n=n: calls.__setitem__(n, a[0]))
               for n, m in model.named_modules() if type(m).__name__ == "MaskUnitAttention"]
    model(x)
    for h in handles:
        h.remove()
    for n, inp in calls.items():
        m = dict(model.named_modules())[n]
        B, N, _ = inp.shape
        units = N // (m.q_stride * m.window_size) if m.use_mask_unit_attn else 1
        qkv = m.qkv(inp).reshape(B, -1, units, 3, m.heads, m.head_dim).permute(3, 0, 4, 2, 1, 5)
        q, k = qkv[0], qkv[1]                                     # [B, heads, units, tokens, d]
        q = q.view(B, m.heads, units, m.q_stride, -1, m.head_dim).amax(3)
        a = torch.softmax(q @ k.transpose(-1, -2) * m.head_dim ** -0.5, -1)
        maps[n] = a.transpose(1, 2).flatten(0, 1)                  # [B * units, heads, N, M]
    return maps


def _reference_maps(model, x, oracle):
    """{layer: [B * windows, heads, N, M]} from timm's AttentionExtract (fused attention off)."""
    if oracle == "hiera":
        return _hiera_maps(model, x)
    extract = (AttentionExtract(model, names=["*attn_drop"], method="hook") if oracle == "hook"
               else AttentionExtract(model, names=["*.softmax"], method="fx"))
    out = extract(x)
    return {k.rpartition(".")[0]: v for k, v in out.items()}


@pytest.mark.parametrize("name,kwargs,side,oracle", PARAMS)
def test_capture_with_fused_attention_matches_timms_extractor(name, kwargs, side, oracle):
    model = _build(name, kwargs)
    _set_fused(model, True)                       # where the module has it (timm's default, not Visformer's)
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        reference = model(x)
        with AttentionCapture(model) as cap:
            logits = model(x)
        _set_fused(model, False)
        expected = _reference_maps(model, x, oracle)
    assert torch.equal(logits, reference)
    found = attention_layers(model)
    layers = [layer.name for layer in found]
    assert [m.layer for m in cap.maps] == layers and set(expected) == set(layers)
    for layer in found:  # the heads' slices tile the output projection's input
        width = getattr(layer.proj, "in_features", None) or layer.proj.in_channels
        assert layer.num_heads * layer.head_dim == width, layer.name
    for rec in cap.maps:
        ref = expected[rec.layer]
        if ref.dim() == 3:  # heads folded into timm's batch (SAM): [B * heads, N, M] -> [B, heads, N, M]
            ref = ref.unflatten(0, (-1, rec.num_heads))
        if ref.dim() == 5:  # a batch of windows per image: [B, windows, heads, ...] (NesT: [B, heads, windows, ...])
            ref = ref.movedim(2 if rec.family == "NesT" else 1, 1).flatten(0, 1)
        assert rec.attn.shape == ref.shape, rec.layer
        # fused vs explicit attention: rounding, compounded through the layers before (Visformer's BN)
        assert (rec.attn - ref).abs().max().item() <= 1e-4, rec.layer
        assert rec.attn.shape[0] == rec.batch_size * rec.windows and rec.batch_size == 2
        assert rec.query_pos.shape == (rec.windows, ref.shape[2], 2), rec.layer
        assert rec.key_pos.shape == (rec.windows, ref.shape[3], 2), rec.layer


def _capture(name, kwargs, side):
    model = _build(name, kwargs)
    with torch.no_grad(), AttentionCapture(model) as cap:
        model(torch.randn(1, 3, side, side))
    return {m.layer: m for m in cap.maps}


def _nan_rows(pos):
    return pos.isnan().all(-1)


def test_pvt_keys_sit_at_the_centres_of_the_reduced_blocks():
    maps = _capture("pvt_v2_b0", {}, 224)
    first = maps["stages.0.blocks.0.attn"]   # stride 4, keys reduced 8 x 8 (stride 32)
    assert first.query_pos[0, :2].tolist() == [[2.0, 2.0], [2.0, 6.0]]
    assert first.key_pos[0, :2].tolist() == [[16.0, 16.0], [16.0, 48.0]] and first.key_pos.shape[1] == 49
    linear = _capture("pvt_v2_b2_li", dict(depths=(1, 1, 1, 1)), 224)["stages.0.blocks.0.attn"]
    # adaptive 7 x 7 pool of 56 tokens: bins of 8 tokens, centres 16, 48, ... px
    assert linear.key_pos[0, :2].tolist() == [[16.0, 16.0], [16.0, 48.0]]


def test_class_attention_queries_have_no_position():
    cait = _capture("cait_xxs24_224", dict(depth=1, depth_token_only=1), 224)["blocks_token_only.0.attn"]
    assert _nan_rows(cait.query_pos).all() and cait.query_pos.shape == (1, 1, 2)
    assert _nan_rows(cait.key_pos[0, :1]).all() and cait.key_pos[0, 1].tolist() == [8.0, 8.0]
    # branch 0's class token over branch 1's patches: a 14 x 14 grid (224 px, 16 px patches) of the 240 px input
    cross = _capture("crossvit_tiny_240", {}, 240)["blocks.0.fusion.0.attn"]
    assert _nan_rows(cross.query_pos).all() and torch.allclose(cross.key_pos[0, 1], torch.tensor([120 / 14] * 2))
    patches = _capture("cait_xxs24_224", dict(depth=1, depth_token_only=1), 224)["blocks.0.attn"]
    assert not patches.query_pos.isnan().any()  # talking heads run on patch tokens only


def test_mvit_pooled_queries_sit_on_every_other_token():
    maps = _capture("mvitv2_tiny", {}, 224)
    rec = maps["stages.1.blocks.0.attn"]           # input 56 x 56 (stride 4), q and k/v stride 2
    assert rec.query_pos[0, :2].tolist() == [[2.0, 2.0], [2.0, 10.0]] and rec.query_pos.shape[1] == 28 * 28


def test_windows_partition_the_grid():
    twins = _capture("twins_svt_small", dict(depths=(2, 2, 2, 2)), 224)["blocks.0.0.attn"]
    assert (twins.windows, tuple(twins.attn.shape)) == (64, (64, 2, 49, 49))
    assert twins.query_pos[0, 0].tolist() == [2.0, 2.0] and twins.query_pos[0, -1].tolist() == [26.0, 26.0]
    tnt = _capture("tnt_s_patch16_224", dict(depth=1), 224)["blocks.0.attn_in"]  # 4 x 4 pixels per patch
    assert tnt.windows == 196 and tnt.query_pos[1, :2].tolist() == [[2.0, 18.0], [2.0, 22.0]]


def test_hiera_mask_units_are_compact_blocks_of_the_grid():
    maps = _capture("hiera_tiny_224", {}, 224)
    unit = maps["blocks.0.attn"]                 # 56 x 56 tokens of 4 px, mask units of 8 x 8 tokens
    assert unit.windows == 49 and unit.key_pos.shape == (49, 64, 2)
    span = unit.key_pos.amax(1) - unit.key_pos.amin(1)
    assert torch.equal(span, torch.full((49, 2), 28.0))
    every = unit.key_pos.reshape(-1, 2)
    assert len({tuple(p) for p in every.tolist()}) == 56 * 56
    pooled = maps["blocks.1.attn"]               # q max-pooled 2 x 2: centres of 2 x 2 token blocks
    assert pooled.query_pos.shape == (49, 16, 2) and (pooled.query_pos % 8 == 4).all()  # 2, 6 px -> 4 px


def test_sam_windows_tile_the_zero_padded_patch_grid():
    """SAM's window block pads the 14 x 14 patch grid to 16 x 16 and cuts 2 x 2 windows of 8 x 8: window 1 is
    the top right, its last two columns padding (no position); the global block attends all 196 patches."""
    maps = _capture("samvit_base_patch16_224", SAM, 224)
    win, glob = maps["blocks.0.attn"], maps["blocks.1.attn"]
    assert tuple(win.attn.shape) == (4, 3, 64, 64) and win.windows == 4
    pos = win.key_pos[1].view(8, 8, 2)
    assert pos[0, :6, 1].tolist() == [(8 + i + 0.5) * 16 for i in range(6)] and pos[:, 6:].isnan().all()
    assert win.key_pos[3].isnan().any(-1).sum() == 64 - 36  # bottom right: 6 x 6 patches
    assert tuple(glob.attn.shape) == (1, 3, 196, 196) and not glob.key_pos.isnan().any()


def test_heads_folded_into_the_batch_are_chunked_in_whole_images():
    """Chunked records of a heads-in-batch family (SAM, fused attention with a per-instance rel-pos bias)
    are whole images, and reassemble the unchunked maps and head outputs."""
    model = _build("samvit_base_patch16_224", SAM)
    x = torch.randn(3, 3, 224, 224)
    with torch.no_grad(), AttentionCapture(model, head_outputs=True) as whole:
        model(x)
    pieces = []
    with torch.no_grad(), AttentionCapture(model, pieces.append, head_outputs=True, chunk_bytes=1):
        model(x)
    for rec in whole.maps:
        parts = [p for p in pieces if p.layer == rec.layer]
        assert [p.batch_size for p in parts] == [1, 1, 1] and parts[0].attn.shape[0] == rec.windows
        assert (torch.cat([p.attn for p in parts]) - rec.attn).abs().max() <= 1e-6
        assert torch.equal(torch.cat([p.head_outputs for p in parts]), rec.head_outputs)


@pytest.mark.slow
def test_nest_maps_are_read_and_its_interleaved_heads_not_ablated():
    """NesT's level-1 blocks are 4 x 4 blocks of 14 x 14 tokens (4 px); its heads are interleaved at the projection
    input, so nulling one is refused in one line, and head outputs (CKA) are not applicable, not wrong."""
    model = _build("nest_tiny", {})
    rec = _capture("nest_tiny", {}, 224)["levels.0.transformer_encoder.0.attn"]
    assert rec.windows == 16 and rec.key_pos[1, 0].tolist() == [2.0, 58.0]
    with pytest.raises(UserError, match="interleaves") as e, torch.no_grad(), \
            HeadMask(model, {"levels.0.transformer_encoder.0.attn": [0]}):
        model(torch.randn(1, 3, 224, 224))
    assert "\n" not in str(e.value)
    with torch.no_grad(), AttentionCapture(model, head_outputs=True) as cap:
        model(torch.randn(1, 3, 224, 224))
    assert all(m.head_outputs is None for m in cap.maps)


@pytest.mark.slow
def test_hieradet_pooled_queries_sit_at_the_centre_of_the_tokens_they_pool():
    """sam2_hiera_tiny: 56 x 56 tokens of 4 px in 8 x 8 windows; block 1 max-pools queries 2 x 2 (4 x 4 per window)."""
    maps = _capture("sam2_hiera_tiny", {}, 224)
    first, pooled = maps["blocks.0.attn"], maps["blocks.1.attn"]
    assert first.windows == 49 and first.key_pos[1, 0].tolist() == [2.0, 34.0]
    assert pooled.query_pos.shape == (49, 16, 2) and pooled.query_pos[0, :2].tolist() == [[4.0, 4.0], [4.0, 12.0]]
    assert torch.equal(pooled.key_pos, first.key_pos)


def test_volo_outlook_windows_global_and_class_attention_match_timms_extractor():
    """A small VOLO (one block per stage): outlook attention at 28 x 28 tokens of 8 px, stride 2, 3 x 3 windows
    (one per pooled position, padding NaN), then global and class attention; maps equal AttentionExtract."""
    torch.manual_seed(0)
    model = timm.models.volo.VOLO(layers=(1, 1, 1, 1), embed_dims=(64, 128, 128, 128), num_heads=(2, 4, 4, 4)).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        reference = model(x)
        with AttentionCapture(model) as cap:
            logits = model(x)
        _set_fused(model, False)
        expected = _reference_maps(model, x, "hook")
    assert torch.equal(logits, reference) and [m.layer for m in cap.maps] == list(expected)
    for rec in cap.maps:
        ref = expected[rec.layer]
        ref = ref.movedim(2, 1).flatten(0, 1) if ref.dim() == 5 else ref  # [B, heads, positions, 9, 9]
        assert (rec.attn - ref).abs().max() <= 1e-6, rec.layer
    outlook = cap.maps[0]
    assert outlook.windows == 14 * 14 and tuple(outlook.attn.shape[1:]) == (2, 9, 9)
    assert outlook.key_pos[0, :4].isnan().all() and outlook.key_pos[0, 4].tolist() == [4.0, 4.0]  # centre: token 0
    assert outlook.key_pos[1, 4].tolist() == [4.0, 20.0]  # the next window is centred two tokens on
    assert cap.maps[-1].family == "class attention" and cap.maps[-1].attn.shape[2] == 1


HEAD_SIMILARITY = ["beit_base_patch16_224", "eva02_tiny_patch14_224", "cait_xxs24_224", "pvt_v2_b0",
                   "twins_svt_small", "crossvit_tiny_240", "tnt_s_patch16_224", "mvitv2_tiny", "hiera_tiny_224",
                   "vit_relpos_small_patch16_224", "samvit_base_patch16_224"]


@pytest.mark.slow
@pytest.mark.parametrize("name", HEAD_SIMILARITY)
def test_head_similarity_runs_end_to_end(name):
    kwargs, side = next((c[1], c[2]) for c in CASES if c[0] == name)
    model = _build(name, kwargs)
    df = head_similarity(model, [torch.randn(2, 3, side, side)])
    assert list(df.layer.unique()) == [layer.name for layer in attention_layers(model)]
    cos = df[(df.metric == "mean_pairwise_cosine") & df.applicable]
    assert len(cos) > 0 and cos.value.between(-1, 1).all()
    dist = df[(df.metric == "mean_attention_distance") & (df.family != "class attention")]  # queries placed
    assert len(dist) > 0 and dist.value.notna().all() and (dist.value > 0).all()


def test_xcit_is_refused_in_one_line_saying_why():
    model = timm.create_model("xcit_nano_12_p16_224")
    with pytest.raises(UnsupportedModelError, match=r"blocks\.0\.attn \(XCA\) is cross-covariance attention") as e:
        attention_layers(model)
    assert "\n" not in str(e.value) and isinstance(e.value, UserError)
    with pytest.raises(UnsupportedModelError, match="cross-covariance"):
        AttentionCapture(model)


@pytest.mark.parametrize("name", ["vit_dpwee_patch16_reg1_gap_256", "vit_little_patch16_reg1_gap_256"])
def test_differential_attention_is_refused_in_one_line_saying_why(name):
    """DiffAttention (as a ViT's attn_layer or in a parallel block) applies a difference of two softmaxes to v."""
    kwargs = dict(depth=1) if "dpwee" in name else dict(depth=1, attn_layer="diff")
    with pytest.raises(UnsupportedModelError, match="difference of two softmaxes") as e:
        attention_layers(timm.create_model(name, **kwargs))
    assert "\n" not in str(e.value) and "blocks.0" in str(e.value)


def test_head_similarity_cli_refuses_xcit_in_one_line(capsys, tmp_path):
    from analysis.head_similarity import main
    err = assert_rejected(main, ["--model", "xcit_nano_12_p16_224", "--num-images", "1",
                                 "--out", str(tmp_path / "sim.csv")], "cross-covariance", capsys, tmp_path)
    assert "XCA" in err
