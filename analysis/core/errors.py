"""User errors: one line on stderr and exit code 2, never a traceback.

Standard library only: the CLIs use it while parsing, before torch is imported.
"""
from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import time
from typing import Callable, Optional

from .names import COMMANDS

__all__ = ["UserError", "LaunchError", "launch_environment", "note", "flush_notes", "deferring_notes", "one_process", "FOLDER_VARIABLES", "Terminated", "is_user_error", "exit_on_user_error", "wait_for_rank_0", "not_a_command",
           "ranks_may_diverge", "interrupted_by", "recording_interrupts"]



class UserError(ValueError):
    """Bad input from the user (unknown model, missing folder, unwritable output, ...). A `ValueError`, so
    library callers that catch the standard exception for a bad argument catch it too."""


class LaunchError(UserError):
    """A user error in this process's own environment (RANK, WORLD_SIZE, ...): every process that meets it
    reports it itself, at once, whatever its rank (no rank 0 may exist to report it)."""


class Terminated(BaseException):
    """SIGTERM, raised where the program is so that temporary files are cleaned up on the way out."""


def is_user_error(error: BaseException) -> bool:
    """A `UserError`, or a `shvit.weights.CheckpointError` (a checkpoint that cannot be loaded).

    shvit is looked up, not imported: if `shvit.weights` was never imported, none of its errors
    can have been raised, and this module stays free of torch.
    """
    weights = sys.modules.get("shvit.weights")
    return isinstance(error, UserError) or (weights is not None and isinstance(error, weights.CheckpointError))


FOLDER_VARIABLES = ("HF_HOME", "HF_HUB_CACHE", "TORCH_HOME", "SHVIT_LAB_ROOT", "SHVIT_LAB_OUTPUT")


def launch_environment() -> tuple[int, int, int]:
    """(WORLD_SIZE, RANK, LOCAL_RANK) as torchrun sets them (1, 0, 0 without it), checked: whole numbers,
    RANK and LOCAL_RANK below WORLD_SIZE, and MASTER_ADDR / MASTER_PORT present for several processes; and
    the folders of `FOLDER_VARIABLES` (hub caches, the lab's project and output roots), where set, are folders
    (or do not exist yet). A stray RANK=1, a WORLD_SIZE=2 without a rendezvous or HF_HOME pointing at a file
    is a `LaunchError`, not a wait or a traceback."""
    env = os.environ

    def number(name: str, default: int) -> int:
        text = env.get(name, str(default)).strip()
        if not (text.isascii() and text.isdigit()):   # '²' is a digit to str.isdigit, not to int()
            raise LaunchError(f"environment variable {name}={env[name]!r} is not a whole number >= 0 (torchrun sets "
                              "it; unset it to run as one process)")
        return int(text)

    size, rank, local_rank = number("WORLD_SIZE", 1), number("RANK", 0), number("LOCAL_RANK", 0)
    if size < 1 or rank >= size or local_rank >= size:
        raise LaunchError(f"RANK={rank} / LOCAL_RANK={local_rank} do not fit WORLD_SIZE={size} (torchrun sets them; "
                          "unset them to run as one process)")
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if size > 1 and not env.get(v)]
    if missing:
        raise LaunchError(f"WORLD_SIZE={size} without {' and '.join(missing)}: start the processes with torchrun "
                          "(or unset WORLD_SIZE to run as one process)")
    for name in FOLDER_VARIABLES:   # folders the tools read or write: a file there fails later, as a traceback
        value = env.get(name)
        if value is not None and (not value.strip() or (os.path.exists(value) and not os.path.isdir(value))):
            raise LaunchError(f"environment variable {name}={value!r} is not a folder; point it at one or unset it")
    return size, rank, local_rank


def one_process() -> bool:
    """Whether this is a run of one process (WORLD_SIZE unset, empty or 1), whatever RANK says: no other rank
    exists to report an error for it, so it reports its own."""
    return os.environ.get("WORLD_SIZE", "1").strip() in ("", "1")


_pending_notes: Optional[list] = None   # notes held back while a command checks its input (`deferring_notes`)


def note(message: str) -> None:
    """A remark for the user on stderr (`note: ...`). Within `deferring_notes` (a running command) it is held
    back until the command has checked its input (`flush_notes`, or its success): a bad input is still
    reported in one line, with no notes before it."""
    if _pending_notes is None:
        print(message, file=sys.stderr)
    else:
        _pending_notes.append(message)


def flush_notes() -> None:
    """Print the notes held back so far (the input is checked, the command will run); later notes print at once."""
    global _pending_notes
    pending, _pending_notes = _pending_notes, None
    for message in pending or ():
        print(message, file=sys.stderr)


@contextlib.contextmanager
def deferring_notes():
    """Hold `note`s back for the block: printed if it succeeds (or at `flush_notes`), dropped if it fails."""
    global _pending_notes
    saved, _pending_notes = _pending_notes, []
    try:
        yield
        flush_notes()
    finally:
        _pending_notes = saved


def not_a_command(module: str) -> int:
    """What `python -m <library module>` does: say so in one line, name the commands; exit code 2."""
    commands = ", ".join(f"python -m analysis.{c}" for c in COMMANDS)
    print(f"{module} is a library module, not a command; the commands are: {commands}", file=sys.stderr)
    return 2


# how gloo / NCCL / the TCP store say that another process of the job is gone (killed, crashed)
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "remote worker crash", "Broken pipe",
              "ProcessGroupNCCL is aborted", "NCCL communicator was aborted")


def _peer_failed(error: BaseException) -> bool:
    """A collective that failed because another process of a diverged torchrun job died (its own message
    says why); looked up, not imported, as `is_user_error` does."""
    dist = sys.modules.get("torch.distributed")
    if not _ranks_diverge or dist is None:
        return False
    text = str(error)
    return isinstance(error, getattr(dist, "DistError", ())) or (
        isinstance(error, RuntimeError) and any(s in text for s in _PEER_GONE))


received_signals: list[int] = []   # signals this process was stopped by (`interrupted_by`)


def _raise_terminated(signum, frame):
    received_signals.append(signum)
    raise Terminated()


def interrupted_by() -> Optional[type]:
    """KeyboardInterrupt or Terminated if this process received SIGINT or SIGTERM / SIGHUP (a signal to its
    process group also stops its children: their failure, e.g. a dead notebook kernel, is then this
    interrupt, not an error of their own); None otherwise."""
    if signal.SIGINT in received_signals:
        return KeyboardInterrupt
    return Terminated if received_signals else None


@contextlib.contextmanager
def recording_interrupts():
    """Within the block, Ctrl-C is recorded (`interrupted_by`) before it raises KeyboardInterrupt as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    def on_interrupt(signum, frame):
        received_signals.append(signum)
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


_ranks_diverge = False


def ranks_may_diverge() -> None:
    """Say that the processes of a torchrun job now work on different data (`core.distributed.World`
    calls it): from here on a user error may be met by one rank alone, so every rank reports its own."""
    global _ranks_diverge
    _ranks_diverge = True


def _print_once(message: str, *, rank_local: bool = False) -> None:
    """On stderr, from one process only: under torchrun every rank meets the same error (same arguments,
    same files) until the ranks diverge; after that, each rank that meets one names itself."""
    rank = os.environ.get("RANK", "0")
    if rank_local and _ranks_diverge:
        print(message.replace(": error: ", f": error (rank {rank}): ", 1), file=sys.stderr)
    elif rank == "0" or one_process():
        print(message, file=sys.stderr)


def wait_for_rank_0(timeout_s: float = 60.0) -> None:
    """Under torchrun, before the ranks diverge, every rank meets the same user error and rank 0 reports
    it. A rank that exited first would have torchrun stop rank 0 before it prints, so the other ranks
    wait here (torchrun ends them as soon as rank 0 has exited)."""
    if os.environ.get("RANK", "0") == "0" or _ranks_diverge or one_process():
        return
    try:
        time.sleep(timeout_s)
    except Terminated:
        raise SystemExit(143) from None


def _print_stopped(prog: str, how: str) -> None:
    """One line for a signal: from one process alone, or, in a job of several, from every rank it
    reached (torchrun stops the survivors with SIGTERM when one rank dies; each says so)."""
    if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
        print(f"{prog}: {how} (rank {os.environ.get('RANK', '0')})", file=sys.stderr)
    else:
        print(how, file=sys.stderr)


def exit_on_user_error(main: Callable[..., int | None], prog: str = "analysis") -> Callable[..., int]:
    """Wrap a CLI `main`: a user error prints `prog: error: message` and exits 2; Ctrl-C exits
    130 and SIGTERM 143, quietly, after the temporary files of unfinished writes are removed."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        main_thread = threading.current_thread() is threading.main_thread()  # signals: main thread only
        previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
        hangup = signal.signal(signal.SIGHUP, _raise_terminated) if main_thread and hasattr(signal, "SIGHUP") \
            else None  # a closed terminal: cleaned up as SIGTERM is, not left with temporary files
        try:
            launch_environment()
            return main(*args, **kwargs) or 0
        except KeyboardInterrupt:
            _print_stopped(prog, "interrupted")
            raise SystemExit(130) from None
        except Terminated:
            _print_stopped(prog, "terminated")
            raise SystemExit(143) from None
        except Exception as e:
            if _peer_failed(e):
                _print_once(f"{prog}: stopped (rank {os.environ.get('RANK', '0')}): another process of the job "
                            "failed or was killed (its message, if any, is above)", rank_local=True)
                raise SystemExit(1) from None
            if not is_user_error(e):
                raise
            if isinstance(e, LaunchError):
                print(f"{prog}: error: {e}", file=sys.stderr)
                raise SystemExit(2) from None
            _print_once(f"{prog}: error: {e}", rank_local=True)
            wait_for_rank_0()
            raise SystemExit(2) from None
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
                if hangup is not None:
                    signal.signal(signal.SIGHUP, hangup)

    return wrapper


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
