"""Argument parsing shared by the `python -m analysis.<tool>` CLIs."""
from __future__ import annotations

import argparse
import contextlib
import sys

import torch

from .errors import UserError

__all__ = ["ArgumentParser", "add_device_arg", "resolve_device", "add_attention_backend_arg",
           "attention_backend", "ATTENTION_BACKENDS"]

ATTENTION_BACKENDS = ("auto", "math", "flash", "efficient", "cudnn")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with examples kept verbatim and one-line errors (exit 2)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def add_device_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to run (auto: cuda when available, else cpu)")


def resolve_device(name: str) -> torch.device:
    """`auto` -> cuda if available else cpu; asking for cuda without one is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda requested but no CUDA device is available (use --device cpu)")
    return torch.device(name)


def add_attention_backend_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--attention-backend", default="auto", choices=ATTENTION_BACKENDS,
                        help="force one scaled_dot_product_attention kernel (default auto: torch's choice "
                             "for this host and device)")


def attention_backend(name: str) -> contextlib.AbstractContextManager:
    """A context that forces the named SDPA backend (`auto`: leaves torch's choice alone)."""
    if name == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    return sdpa_kernel({"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
                        "efficient": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}[name])
