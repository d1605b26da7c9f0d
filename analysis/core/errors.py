"""User errors: one line on stderr and exit code 2, never a traceback.

Standard library only: the CLIs use it while parsing, before torch is imported.
"""
from __future__ import annotations

import functools
import sys
from typing import Callable

__all__ = ["UserError", "is_user_error", "exit_on_user_error"]


class UserError(Exception):
    """Bad input from the user (unknown model, missing folder, unwritable output, ...)."""


def is_user_error(error: BaseException) -> bool:
    """A `UserError`, or a `shvit.weights.CheckpointError` (a checkpoint that cannot be loaded).

    shvit is looked up, not imported: if `shvit.weights` was never imported, none of its errors
    can have been raised, and this module stays free of torch.
    """
    weights = sys.modules.get("shvit.weights")
    return isinstance(error, UserError) or (weights is not None and isinstance(error, weights.CheckpointError))


def exit_on_user_error(main: Callable[..., int | None], prog: str = "analysis") -> Callable[..., int]:
    """Wrap a CLI `main`: a user error prints `prog: error: message` and exits 2; Ctrl-C exits 130."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs) or 0
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        except Exception as e:
            if not is_user_error(e):
                raise
            print(f"{prog}: error: {e}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
