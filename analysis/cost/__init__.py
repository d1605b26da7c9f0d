"""Cost and speed: macs and memory traffic per op / module / stage, op rules, stage latency,
runtime breakdown, the roofline, throughput, the macro-design and variant tables, and their figures.
CLI: `python -m analysis.cost`."""
from .._lazy import attach_stub

__getattr__, __dir__, __all__ = attach_stub(__name__)
