"""Checkpoint readers on any bytes: tensors or one `CheckpointError` line, never another exception,
never code run, never the advice to load with weights_only=False."""
import io
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from analysis.lab.checkpoints import load_checkpoint
from shvit.weights import CheckpointError, read_state_dict


def _valid_pth() -> bytes:
    buf = io.BytesIO()
    torch.save({"model": {"w": torch.arange(64.0).view(8, 8), "b": torch.zeros(8)}}, buf)
    return buf.getvalue()


def _valid_safetensors(tmp_path) -> bytes:
    path = tmp_path / "ok.safetensors"
    save_file({"w": torch.ones(4, 4)}, str(path))
    return path.read_bytes()


def _cases(tmp_path, n_random: int):
    """(name, bytes): random bytes of many lengths, random bytes behind zip / pickle / safetensors
    headers, every ~1% truncation and bit flips of valid files."""
    rng = np.random.default_rng(0)
    pth, st = _valid_pth(), _valid_safetensors(tmp_path)
    for i in range(n_random):
        size = int(rng.integers(0, 3000))
        yield f"random{i}", rng.bytes(size)
    for i, head in enumerate((b"PK\x03\x04", b"\x80\x02", b"\x80\x04\x95", pth[:64], st[:16])):
        for j in range(8):
            yield f"header{i}_{j}", head + rng.bytes(int(rng.integers(0, 800)))
    for frac in np.linspace(0, 1, 101)[:-1]:
        yield f"pth_cut{frac:.2f}", pth[:int(len(pth) * frac)]
        yield f"st_cut{frac:.2f}", st[:int(len(st) * frac)]
    for i in range(40):
        for name, blob in (("pth", pth), ("st", st)):
            b = bytearray(blob)
            for k in rng.integers(0, len(b), size=4):
                b[k] ^= int(rng.integers(1, 256))
            yield f"{name}_flip{i}", bytes(b)


def _check(reader, path):
    try:
        out = reader(path)
    except CheckpointError as e:
        msg = str(e)
        assert "\n" not in msg and str(path) in msg and "weights_only=False" not in msg \
            and "set to `False`" not in msg, msg
        return "error"
    assert isinstance(out, dict)
    return "read"


def test_read_state_dict_on_any_bytes(tmp_path):
    outcomes = {}
    cases = list(_cases(tmp_path, 200))
    for name, blob in cases:
        for suffix in (".pth", ".safetensors"):
            path = tmp_path / f"{name}{suffix}"
            path.write_bytes(blob)
            outcome = _check(read_state_dict, path)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert sum(outcomes.values()) == 2 * len(cases) >= 600 and outcomes["error"] > 500


def test_training_checkpoint_reader_on_any_bytes(tmp_path):
    cases = list(_cases(tmp_path, 40))
    for name, blob in cases:
        path = tmp_path / f"{name}.pth"
        path.write_bytes(blob)
        _check(load_checkpoint, path)
    assert len(cases) >= 100


class _Payload:
    def __reduce__(self):
        import os
        return (os.system, ("touch PAYLOAD_RAN",))


def test_a_malicious_pickle_never_runs_and_the_message_never_suggests_unsafe_loading(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for protocol in (2, 4):
        path = tmp_path / f"evil{protocol}.pth"
        path.write_bytes(pickle.dumps({"model": _Payload()}, protocol=protocol))
        with pytest.raises(CheckpointError) as e:
            read_state_dict(path)
        msg = str(e.value).replace(str(path), "")
        assert "refuses to unpickle" in msg and "convert it to safetensors" in msg and "False" not in msg
        if protocol == 2:  # torch names the global the file asked for
            assert "(posix.system)" in msg or "(os.system)" in msg, msg
    assert not (tmp_path / "PAYLOAD_RAN").exists()


def test_text_and_fake_safetensors_files(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("hello, I am not a checkpoint\n" * 10)
    with pytest.raises(CheckpointError, match="is not a readable checkpoint"):
        read_state_dict(text)
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(_valid_pth())
    with pytest.raises(CheckpointError, match="is not a readable checkpoint"):
        read_state_dict(fake)
    empty = tmp_path / "empty.safetensors"
    save_file({}, str(empty))
    with pytest.raises(CheckpointError, match="holds no state dict"):
        read_state_dict(empty)


def test_a_damaged_training_checkpoint_is_refused_before_fit_reads_it(tmp_path):
    from analysis.lab.checkpoints import CHECKPOINT_FORMAT
    good = {"format": CHECKPOINT_FORMAT, "config": {}, "model": {"w": torch.ones(1)}, "optimizer": {},
            "epoch": 1, "step": 2}
    path = tmp_path / "last.pth"
    torch.save(good, path)
    assert load_checkpoint(path)["step"] == 2
    for damage in ({"optimizer": None}, {"nptimizer": {}, "optimizer": None}, {"epoch": "1"},
                   {"model": {"w": "not a tensor"}}, {"config": [1]}):
        torch.save({k: v for k, v in {**good, **damage}.items() if v is not None}, path)
        with pytest.raises(CheckpointError, match="damaged analysis.train checkpoint"):
            load_checkpoint(path)
