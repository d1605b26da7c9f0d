"""How a failure is reported: a torchrun job whose other process died ends with one line per surviving
rank, whatever words the backend used to say the peer is gone."""
import pytest
import torch.distributed  # noqa: F401  (`_peer_failed` looks it up in sys.modules)

from analysis.core import errors


@pytest.mark.parametrize("text", ["[../gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:1234",
                                  "recv: Connection reset by peer", "Broken pipe", "NCCL communicator was aborted"])
def test_a_dead_peer_ends_the_job_with_one_line(monkeypatch, capsys, text):
    monkeypatch.setattr(errors, "_ranks_diverge", True)
    for name, value in (("RANK", "1"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "1"), ("MASTER_ADDR", "127.0.0.1"),
                        ("MASTER_PORT", "29500")):   # rank 1 of a torchrun job
        monkeypatch.setenv(name, value)

    def main():
        raise RuntimeError(text)
    with pytest.raises(SystemExit) as exc:
        errors.exit_on_user_error(main, prog="analysis.head_ablation")()
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["analysis.head_ablation: stopped (rank 1): another process of the job failed or was killed (its message, if any, is above)"]


def test_the_same_words_before_the_ranks_diverge_are_a_real_error(monkeypatch):
    monkeypatch.setattr(errors, "_ranks_diverge", False)

    def main():
        raise RuntimeError("Connection reset by peer")
    with pytest.raises(RuntimeError):
        errors.exit_on_user_error(main)()
