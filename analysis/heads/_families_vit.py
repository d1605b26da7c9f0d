"""Attention families of timm's plain and pyramid ViTs beyond the papers' models (one token sequence
per block: BEiT, EVA, CaiT, PVT-v2, Twins, CrossViT, MViTv2, Hiera, ...), registered on import."""
from __future__ import annotations

from ..core.errors import not_a_command

__all__: list[str] = []  # registers families; nothing to import by name


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
