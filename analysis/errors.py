"""User errors: one line on stderr and exit code 2, never a traceback."""
from __future__ import annotations

import functools
import sys
from typing import Callable

from shvit.weights import CheckpointError

__all__ = ["UserError", "CheckpointError", "USER_ERRORS", "exit_on_user_error"]


class UserError(Exception):
    """Bad input from the user (unknown model, missing folder, unwritable output, ...)."""


USER_ERRORS = (UserError, CheckpointError)


def exit_on_user_error(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a CLI `main`: a user error prints `prog: error: message` and exits 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs) or 0
        except USER_ERRORS as e:
            prog = main.__module__ or "analysis"
            if prog == "__main__":  # run as `python -m analysis.<tool>`: name the tool, not __main__
                spec = getattr(sys.modules.get("__main__"), "__spec__", None)
                prog = spec.name if spec is not None else "analysis"
            prog = prog.removesuffix(".__main__")
            print(f"{prog}: error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
