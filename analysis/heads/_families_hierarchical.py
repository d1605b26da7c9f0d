"""Attention families of timm's hybrid and windowed models beyond the papers' models (TinyViT, CoaT,
EfficientFormer, FastViT, MaxViT, Swin v2, MobileViT, NextViT, GCViT, DaViT, ...), registered on import."""
from __future__ import annotations

from ..core.errors import not_a_command

__all__: list[str] = []  # registers families; nothing to import by name


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
