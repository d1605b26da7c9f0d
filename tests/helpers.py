"""Helpers shared by tests in several rooms."""
from pathlib import Path

import pytest
import torch


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm non-trivial statistics and affine params (fresh init is an identity)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model


def snapshot(folder) -> dict:
    """Every file under `folder` with its size, mtime and mode: equal snapshots, nothing written."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_mode)
            for p in Path(folder).rglob("*") if p.is_file()}


def assert_rejected(main, argv, needle, capsys, watch) -> str:
    """`main(argv)` exits 2 with one line on stderr containing `needle`, and writes nothing under `watch`."""
    before = snapshot(watch)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    assert exc.value.code == 2, err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert snapshot(watch) == before, "a rejected run wrote or changed files"
    return err
