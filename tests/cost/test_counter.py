"""analysis.cost: known answers by hand, view ops, stage sums, the papers' MAC table, fvcore, CLI."""
import contextlib
import json
import logging

import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from analysis.cost.counter import CostAnalysis
from analysis.cost.__main__ import main

F32 = 4


pytestmark = pytest.mark.usefixtures("one_thread")


class Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


def cost(model, *inputs):
    ca = CostAnalysis(model, inputs, fuse=False)
    return ca.total("macs"), ca.total("mem_bytes")


# ---------------------------------------------------------------------------------------------
# known answers, by hand
# ---------------------------------------------------------------------------------------------

def test_conv_known_answer():
    conv = nn.Conv2d(3, 8, 3, padding=1)  # 1x3x8x8 -> 1x8x8x8
    macs, mem = cost(conv, torch.randn(1, 3, 8, 8))
    assert macs == (8 * 8 * 8) * (3 * 3 * 3)  # output elements x (C_in x k x k)
    assert mem == F32 * (3 * 64 + 8 * 3 * 9 + 8 + 8 * 64)  # input + weight + bias read, output written


def test_depthwise_conv_known_answer():
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
    macs, mem = cost(conv, torch.randn(1, 4, 6, 6))
    assert macs == (4 * 36) * 9  # each output element sees one channel's 3x3 window
    assert mem == F32 * (4 * 36 + 4 * 9 + 4 * 36)


def test_linear_known_answer():
    lin = nn.Linear(16, 32)
    macs, mem = cost(lin, torch.randn(4, 16))
    assert macs == 4 * 16 * 32
    assert mem == F32 * (4 * 16 + 32 * 16 + 32 + 4 * 32)  # the transposed weight is a view: read once


def test_linear_half_precision_bytes():
    lin = nn.Linear(16, 32, bias=False).to(torch.bfloat16)
    macs, mem = cost(lin, torch.randn(4, 16, dtype=torch.bfloat16))
    assert (macs, mem) == (4 * 16 * 32, 2 * (4 * 16 + 32 * 16 + 4 * 32))


def test_matmul_known_answer():
    a, b = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 5, 6)
    macs, mem = cost(Fn(torch.matmul), a, b)
    assert macs == 2 * 3 * 4 * 5 * 6
    assert mem == F32 * (a.numel() + b.numel() + 2 * 3 * 4 * 6)


CPU_BACKENDS = {"auto": None, "math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION}
CUDA_BACKENDS = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
                 "efficient": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}


def forced(backend):
    """Run under one SDPA backend (None: torch's own choice on this host)."""
    return sdpa_kernel(backend) if backend is not None else contextlib.nullcontext()


@pytest.mark.parametrize("backend", CPU_BACKENDS.values(), ids=CPU_BACKENDS.keys())
@pytest.mark.parametrize("mask", [None, "bool", "float"])
def test_sdpa_known_answer_under_each_backend(backend, mask):
    q, k, v = torch.randn(1, 2, 10, 8), torch.randn(1, 2, 12, 8), torch.randn(1, 2, 12, 6)
    m = {None: None, "bool": torch.rand(10, 12) > 0.3, "float": torch.randn(1, 1, 10, 12)}[mask]
    with forced(backend):
        ca = CostAnalysis(Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=m)), (q, k, v),
                          fuse=False)
    ops = ca.ops()
    assert ca.total("macs") == 1 * 2 * 10 * 12 * (8 + 6)  # q @ k^T and attn @ v
    mask_bytes = 0 if m is None else m.numel() * m.element_size()
    assert ca.total("mem_bytes") == F32 * (q.numel() + k.numel() + v.numel() + 1 * 2 * 10 * 6) + mask_bytes
    assert list(ops["op"]) == ["aten.scaled_dot_product_attention"]  # one kernel, whatever ran inside
    assert not ca.unsupported_ops()


def test_sdpa_grouped_query_attention_counts_query_heads():
    q, k, v = torch.randn(2, 8, 10, 16), torch.randn(2, 2, 12, 16), torch.randn(2, 2, 12, 16)
    macs, mem = cost(Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)), q, k, v)
    assert macs == 2 * 8 * 10 * 12 * (16 + 16)
    assert mem == F32 * (q.numel() + k.numel() + v.numel() + q.numel())


@pytest.mark.parametrize("kernel", [torch.ops.aten._scaled_dot_product_flash_attention_for_cpu])
def test_fused_kernel_called_directly_has_the_same_rule(kernel):
    q, k, v = torch.randn(1, 2, 10, 8), torch.randn(1, 2, 12, 8), torch.randn(1, 2, 12, 8)
    macs, mem = cost(Fn(lambda q, k, v: kernel(q, k, v)[0]), q, k, v)
    assert macs == 1 * 2 * 10 * 12 * (8 + 8)
    assert mem == F32 * (q.numel() + k.numel() + v.numel() + 1 * 2 * 10 * 8)


@pytest.mark.parametrize("backend", CPU_BACKENDS.values(), ids=CPU_BACKENDS.keys())
def test_deit_tiny_same_count_under_each_cpu_backend(backend):
    model, x = timm.create_model("deit_tiny_patch16_224"), torch.randn(1, 3, 224, 224)
    with forced(backend):
        ca = CostAnalysis(model, x)
    assert ca.total("macs") == pytest.approx(1258.4e6, rel=1e-3)  # the papers' 1.3 G, fused or not
    with forced(SDPBackend.MATH):
        reference = CostAnalysis(model, x)
    assert ca.ops()[["op", "macs", "mem_bytes"]].equals(reference.ops()[["op", "macs", "mem_bytes"]])
    assert not ca.unsupported_ops()


@pytest.mark.gpu
@pytest.mark.parametrize("backend", CUDA_BACKENDS.values(), ids=CUDA_BACKENDS.keys())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cuda_count_equals_cpu_count_under_each_backend(backend, dtype):
    model, x = timm.create_model("deit_tiny_patch16_224").eval(), torch.randn(1, 3, 224, 224)
    cpu = CostAnalysis(model, x)
    model, x = model.cuda().to(dtype), x.cuda().to(dtype)
    try:
        with forced(backend):
            ca = CostAnalysis(model, x)
    except RuntimeError as e:  # e.g. no flash / cuDNN kernel for fp32 on this GPU
        pytest.skip(f"{backend} cannot run here: {str(e).splitlines()[0]}")
    assert ca.total("macs") == cpu.total("macs")
    # Every tensor shrinks with the dtype except LayerNorm's saved mean and rstd (one each per token),
    # which CUDA keeps in float32: 25 LayerNorms x 197 tokens x 2 statistics.
    stats = sum(isinstance(m, torch.nn.LayerNorm) for m in model.modules()) * 197 * 2
    assert ca.total("mem_bytes") == cpu.total("mem_bytes") * dtype.itemsize // 4 + stats * (4 - dtype.itemsize)
    assert not ca.unsupported_ops()


def test_unsupported_op_is_reported_not_silent():
    ca = CostAnalysis(Fn(lambda x: torch.fft.rfft(x).real.sum()), torch.randn(4, 16), fuse=False)
    assert ca.unsupported_ops() == {"aten._fft_r2c": 1}
    ops = ca.ops().set_index("op")
    assert ops.loc["aten._fft_r2c", "counted_as"] == "unsupported"
    assert ops.loc["aten.sum", "counted_as"] == "zero by convention"


def fft_macs(x, *args, out=None, module=None, **kwargs):  # N log2 N per row, a toy rule
    n = x.shape[-1]
    return x.numel() // n * n * (n.bit_length() - 1)


@pytest.fixture
def fft_rule():
    """A macs rule for aten._fft_r2c registered from outside the package, as a user would; unregistered after."""
    from analysis.cost.op_rules import register_macs, unregister_macs
    register_macs(torch.ops.aten._fft_r2c, fft_macs)
    yield fft_macs
    unregister_macs(torch.ops.aten._fft_r2c)


def test_registered_rule_counts_an_op_from_outside(fft_rule):
    ca = CostAnalysis(Fn(torch.fft.rfft), torch.randn(4, 16), fuse=False)
    assert ca.total("macs") == 4 * 16 * 4 and not ca.unsupported_ops()


def test_unregistered_rule_leaves_the_op_unsupported_again():
    from analysis.cost.op_rules import register_macs, unregister_macs
    x = torch.randn(4, 16)
    register_macs("aten._fft_r2c", fft_macs)
    try:
        assert CostAnalysis(Fn(torch.fft.rfft), x, fuse=False).total("macs") == 4 * 16 * 4
    finally:
        assert unregister_macs("aten._fft_r2c") is fft_macs
    assert CostAnalysis(Fn(torch.fft.rfft), x, fuse=False).unsupported_ops() == {"aten._fft_r2c": 1}


def test_duplicate_rule_is_refused_unless_replaced(fft_rule):
    from analysis.core.errors import UserError
    from analysis.cost.op_rules import register_macs
    with pytest.raises(UserError, match="already registered for aten._fft_r2c"):
        register_macs(torch.ops.aten._fft_r2c.default, lambda *a, **k: 1)
    with pytest.raises(UserError, match="already registered for aten.mm"):  # a built-in (torch's formula)
        register_macs(torch.ops.aten.mm, lambda *a, **k: 1)
    x = torch.randn(4, 16)
    assert CostAnalysis(Fn(torch.fft.rfft), x, fuse=False).total("macs") == 4 * 16 * 4

    @register_macs(torch.ops.aten._fft_r2c, replace=True)
    def one_per_output(*args, out=None, module=None, **kwargs):
        return out.numel()

    assert CostAnalysis(Fn(torch.fft.rfft), x, fuse=False).total("macs") == 4 * 9


def test_unknown_op_names_are_user_errors():
    from analysis.core.errors import UserError
    from analysis.cost.op_rules import register_macs, unregister_macs
    with pytest.raises(UserError, match="no op named 'aten.no_such_op'"):
        register_macs("aten.no_such_op", fft_macs)
    with pytest.raises(UserError, match="no macs rule is registered for aten._fft_r2c"):
        unregister_macs(torch.ops.aten._fft_r2c)
    with pytest.raises(UserError, match="no op named 'aten.no_such_op'"):
        CostAnalysis(Fn(torch.fft.rfft), torch.randn(4, 16), fuse=False, rules={"aten.no_such_op": fft_macs})
    with pytest.raises(TypeError, match="pass several ops as a tuple"):
        register_macs(torch.ops.aten._fft_r2c, torch.ops.aten._fft_c2r)


def test_unknown_metric_is_a_user_error():
    from analysis.core.errors import UserError
    with pytest.raises(UserError, match="unknown metric 'flops'; choose from macs, mem_bytes"):
        CostAnalysis(nn.Linear(2, 2), torch.randn(1, 2), fuse=False).total("flops")


def test_scoped_rule_counts_for_one_analysis_only():
    x = torch.randn(4, 16)
    scoped = CostAnalysis(Fn(torch.fft.rfft), x, fuse=False, rules={torch.ops.aten._fft_r2c: fft_macs})
    assert scoped.total("macs") == 4 * 16 * 4 and not scoped.unsupported_ops()
    assert scoped.ops().set_index("op").loc["aten._fft_r2c", "counted_as"] == "counted"
    again = CostAnalysis(Fn(torch.fft.rfft), x, fuse=False)  # the next analysis without it: as before
    assert again.total("macs") == 0 and again.unsupported_ops() == {"aten._fft_r2c": 1}


def test_scoped_rule_replaces_a_registered_one_for_one_analysis_only():
    """A custom rule for one op changes that op's macs by a known amount, and nothing else."""
    model, x = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8)), torch.randn(4, 16)
    base = CostAnalysis(model, x, fuse=False)
    doubled = CostAnalysis(model, x, fuse=False, rules={"aten.addmm": lambda bias, a, b, *args, out=None, **kwargs:
                                                        2 * a.shape[0] * a.shape[1] * b.shape[1]})
    addmm = base.ops().query("op == 'aten.addmm'")["macs"].sum()
    assert addmm == 4 * 16 * 32 + 4 * 32 * 8 and base.total("macs") == addmm
    assert doubled.total("macs") == base.total("macs") + addmm
    assert (doubled.ops()["mem_bytes"] == base.ops()["mem_bytes"]).all()
    assert CostAnalysis(model, x, fuse=False).total("macs") == addmm


def test_broadcast_input_counts_held_elements():
    x, bias = torch.randn(4, 16), torch.randn(16)
    macs, mem = cost(Fn(torch.add), x, bias)
    assert macs == 0 and mem == F32 * (64 + 16 + 64)


def test_view_ops_cost_zero():
    def views(x):
        y = x.view(2, 3, 20).permute(0, 2, 1).transpose(1, 2).flatten(1)
        parts = x.split(2, dim=1)
        return y.unsqueeze(0).expand(3, -1, -1), x[:, :1, ::2], x.reshape(6, 20), parts, x.detach()

    ca = CostAnalysis(Fn(views), torch.randn(2, 6, 10), fuse=False)
    ops = ca.ops()
    assert len(ops) >= 8
    assert ops[["macs", "mem_bytes", "activations"]].to_numpy().sum() == 0


def test_copy_of_permuted_tensor_is_read_and_written():
    x = torch.randn(2, 6, 10)
    _, mem = cost(Fn(lambda t: t.permute(0, 2, 1).contiguous()), x)
    assert mem == 2 * F32 * x.numel()


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------

def test_stage_sums_equal_totals():
    for name in ("shvitlab_s1", "deit_tiny_patch16_224"):
        ca = CostAnalysis(timm.create_model(name), torch.randn(1, 3, 224, 224))
        st = ca.by_stage()
        assert st["stage"].iloc[0] == "stem" and st["stage"].iloc[-1] == "head"
        for metric in ("macs", "mem_bytes", "bytes_read", "activations", "params"):
            assert st[metric].sum() == ca.total(metric) > 0
        root = ca.by_module().set_index("module").loc[""]
        assert root["macs"] == ca.total() and root["params"] == ca.total("params")
        assert (st["macs"] > 0).all() and (st["mem_bytes"] > 0).all()


PAPER_MACS_M = [  # SHViT Table 1 / 2, EfficientViT Table 1; DeiT-T, Swin-T as both papers cite them
    ("shvit_s1", 224, 241), ("shvit_s2", 224, 366), ("shvit_s3", 224, 601), ("shvit_s4", 256, 986),
    ("shvitlab_s1", 224, 241), ("shvitlab_s4", 256, 986),
    ("efficientvit_m0", 224, 79), ("efficientvit_m1", 224, 167), ("efficientvit_m2", 224, 201),
    ("efficientvit_m3", 224, 263), ("efficientvit_m4", 224, 299), ("efficientvit_m5", 224, 522),
    ("deit_tiny_patch16_224", 224, 1260), ("swin_tiny_patch4_window7_224", 224, 4500),
]


@pytest.mark.parametrize("name,res,paper", PAPER_MACS_M)
def test_paper_mac_table_within_1_percent(name, res, paper):
    model = timm.create_model(name)
    macs = CostAnalysis(model, torch.randn(1, 3, res, res)).total()
    assert abs(macs / 1e6 / paper - 1) < 0.01, f"{name}: {macs / 1e6:.1f} M vs paper {paper} M"


def test_reference_table_agrees():
    """The transcribed Table 2 carries the same numbers as our hard-coded list."""
    from analysis.core.reference import load_reference
    t2 = load_reference("shvit_table2").set_index("timm_name")
    for name in ("shvit_s1", "efficientvit_m4"):
        assert t2.loc[name, "macs_m"] == dict((n, p) for n, _, p in PAPER_MACS_M)[name]


def test_attention_counted_fused_and_unfused():
    x = torch.randn(1, 3, 224, 224)
    fused = timm.create_model("deit_tiny_patch16_224")
    plain = timm.create_model("deit_tiny_patch16_224")
    for m in plain.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
    assert CostAnalysis(fused, x).total() == CostAnalysis(plain, x).total()


@pytest.mark.parametrize("name", ["shvitlab_s1", "efficientvit_m0", "levit_128s", "deit_tiny_patch16_224",
                                  "shvitlab_t6_mhsa"])
def test_agrees_with_fvcore_where_fvcore_supports_every_op(name):
    from fvcore.nn import FlopCountAnalysis
    from analysis.core.models import fuse_model
    model = fuse_model(timm.create_model(name))
    for m in model.modules():  # fvcore cannot see fused attention: give it the matmul path
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
    x = torch.randn(1, 3, 224, 224)
    logging.disable(logging.WARNING)
    try:
        fv = FlopCountAnalysis(model, x)
        fv.unsupported_ops_warnings(False)
        fv.uncalled_modules_warnings(False)
        fv_total, fv_modules = fv.total(), fv.by_module()
    finally:
        logging.disable(logging.NOTSET)
    ours = CostAnalysis(model, x, fuse=False)
    assert ours.total() == fv_total
    mods = ours.by_module().set_index("module")["macs"]
    mismatched = {k: (v, mods[k]) for k, v in fv_modules.items() if k in mods.index and v != mods[k]}
    assert not mismatched


def test_fuse_does_not_touch_the_users_model():
    model = timm.create_model("shvitlab_s1")
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(1, 3, 64, 64)
    unfused = CostAnalysis(model, x, fuse=False).total()
    fused = CostAnalysis(model, x).total()
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == n_bn > 0
    assert fused < unfused  # unfused, BN counts as fvcore counts it


def test_by_operator_and_intensity():
    ca = CostAnalysis(timm.create_model("shvitlab_s1"), torch.randn(1, 3, 224, 224))
    ops = ca.by_operator()
    assert ops["macs"].sum() == ca.total() and ops["mem_bytes"].sum() == ca.total("mem_bytes")
    conv = ops.set_index("op").loc["aten.convolution"]
    assert conv["flops_per_byte"] == pytest.approx(2 * conv["macs"] / conv["mem_bytes"])
    st = ca.by_stage().set_index("stage")
    assert list(st["tokens"]) == [196, 196, 49, 16, 1]
    assert list(st["channels"]) == [128, 128, 224, 320, 1000]


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv,needle", [
    (["--model", "shvit_s9"], "unknown model 'shvit_s9'; did you mean"),
    (["--model", "shvit_s1", "--resolution", "8"], "argument --resolution: must be at least 16 (px), got 8"),
    (["--model", "shvit_s1", "--resolution", "abc"], "invalid int value"),
    (["--model", "shvit_s1", "--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (["--model", "shvit_s1", "--device", "cpu", "--attention-backend", "efficient"], "needs CUDA"),
])
def test_cli_user_errors_exit_2_with_one_line(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_json_schema(capsys):
    assert main(["--model", "shvitlab_s1", "--resolution", "64", "--json", "--latency", "--repeats", "2",
                 "--warmup", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["model", "resolution", "macs", "mem_bytes", "params", "unsupported_ops", "stages"]
    assert out["unsupported_ops"] == {}
    assert out["model"] == "shvitlab_s1" and out["resolution"] == 64
    assert [s["name"] for s in out["stages"]] == ["stem", "stage1", "stage2", "stage3", "head"]
    assert all(list(s) == ["name", "macs", "mem_bytes", "tokens", "latency_ms"] for s in out["stages"])
    assert sum(s["macs"] for s in out["stages"]) == out["macs"]
    assert all(s["latency_ms"] > 0 for s in out["stages"])


def test_cli_csv_is_reproducible(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for path in (a, b):
        assert main(["--model", "efficientvit_m0", "--resolution", "64", "--by", "module",
                     "--csv", str(path)]) == 0
    assert a.read_bytes() == b.read_bytes() and a.read_text().startswith("model,resolution,module,")


def test_cli_warns_and_reports_unsupported_ops(monkeypatch, capsys):
    from analysis.cost import counter, op_rules
    real = op_rules.classify
    monkeypatch.setattr(counter, "classify", lambda f, rules=None: "unsupported"
                        if f.overloadpacket is torch.ops.aten.gelu else real(f, rules))
    assert main(["--model", "deit_tiny_patch16_224", "--resolution", "32", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["unsupported_ops"] == {"aten.gelu": 12}
    warning = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "aten.gelu (12 calls)" in warning[0]


PAPER_TABLE_MODELS = ([f"shvit_s{i}" for i in range(1, 5)] + [f"efficientvit_m{i}" for i in range(6)]
                      + ["deit_tiny_patch16_224", "deit_small_patch16_224", "swin_tiny_patch4_window7_224",
                         "levit_128s", "mobilevit_xs"] + timm.list_models("shvitlab_*"))


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER_TABLE_MODELS)
def test_no_unsupported_op_in_any_paper_model(name):
    from analysis.core.models import create_model_at
    model, (c, h, w) = create_model_at(name)
    ca = CostAnalysis(model, torch.randn(1, c, h, w))
    assert ca.unsupported_ops() == {}
    assert ca.total("macs") > 0 and set(ca.ops()["counted_as"]) <= {"counted", "no arithmetic",
                                                                   "zero by convention"}


@pytest.mark.parametrize("backend", ["auto", "math", "flash"])
def test_cli_deit_tiny_counts_the_same_under_each_backend(backend, capsys):
    """The acceptance check: 1258.4 M macs whichever CPU kernel runs the attention."""
    assert main(["--model", "deit_tiny_patch16_224", "--json", "--device", "cpu", "--latency", "--repeats", "1",
                 "--warmup", "0", "--attention-backend", backend]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["macs"] == pytest.approx(1258.4e6, rel=1e-3) and out["unsupported_ops"] == {}
    assert out["mem_bytes"] == CostAnalysis(timm.create_model("deit_tiny_patch16_224"),
                                            torch.randn(1, 3, 224, 224)).total("mem_bytes")


def test_cli_counts_by_default_and_times_only_when_asked(capsys):
    assert main(["--model", "shvitlab_s1", "--resolution", "64", "--json"]) == 0
    captured = capsys.readouterr()
    assert all(s["latency_ms"] is None for s in json.loads(captured.out)["stages"])
    assert "latency:" not in captured.err
    n = torch.get_num_threads()
    assert main(["--model", "shvitlab_s1", "--resolution", "64", "--latency", "--repeats", "3", "--warmup", "0"]) == 0
    err = capsys.readouterr().err
    assert "latency: median of 3 passes after 0 warm-up, 1 CPU thread(s)" in err
    torch.set_num_threads(n)


def test_cli_text_is_in_human_units_with_a_module_tree_to_depth(capsys):
    """The printed table: K/M/G counts and binary bytes read back to the exact totals' scale; --depth cuts the
    module tree (the CSV keeps every module)."""
    ca = CostAnalysis(*_s1_at_64())
    assert main(["--model", "shvitlab_s1", "--resolution", "64"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "shvitlab_s1 at 64 px, batch 1, BatchNorm folded"
    header, stem = out[1].split(), out[2].split()
    assert header == ["stage", "params", "MACs", "mem_bytes", "FLOP/byte", "tokens", "channels"]
    st = ca.by_stage().iloc[0]
    assert stem[0] == "stem" and stem[2] == f"{st.macs / 1e6:.1f}M"
    assert " ".join(stem[3:5]) == (f"{st.mem_bytes / 2**20:.1f} MiB" if st.mem_bytes >= 2**20
                                   else f"{st.mem_bytes / 2**10:.1f} KiB")
    for depth in (0, 1, 2):
        assert main(["--model", "shvitlab_s1", "--resolution", "64", "--by", "module", "--depth", str(depth)]) == 0
        *rows, total = capsys.readouterr().out.splitlines()[2:]
        assert len(rows) == int((ca.by_module()["depth"] <= depth).sum())
        assert total == (f"total: {ca.total('macs') / 1e6:.1f} M macs, {ca.total('mem_bytes') / 2**20:.1f} MiB, "
                         f"{ca.total('params') / 1e6:.2f} M params")   # on stdout, with the table
        assert rows[0].split()[0] == "model" and max(len(r) - len(r.lstrip()) for r in rows) == 2 * depth


def _s1_at_64():
    from analysis.core.models import create_model_at, fuse_model
    model, (c, h, w) = create_model_at("shvitlab_s1", 64, seed=0)
    torch.manual_seed(0)
    return fuse_model(model, inplace=True), torch.randn(1, c, h, w)

