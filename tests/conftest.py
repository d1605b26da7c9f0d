"""Shared fixtures: deterministic seeds and a 2-thread budget for the CPU test machine."""
import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    """`gpu`-marked tests need CUDA: skipped, with the reason shown, on a machine without it."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture
def one_thread():
    """One intra-op thread: timings and profiles stay steady on a small, shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def figure_only(tmp_path, monkeypatch):
    """For plot functions that return their figure: they run in an empty folder where saving a figure
    fails, and must leave it empty. Figures are closed afterwards."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    def refuse(*args, **kwargs):
        raise AssertionError("a plot function saved its figure")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Figure, "savefig", refuse)
    yield
    plt.close("all")
    assert not any(tmp_path.iterdir()), "a plot function wrote to disk"
