"""The claims registry (`registry.toml`): every row of the scorecard, registered in a commit before its
numbers exist, with its claim, metric, measure and parameters, verdict rule, gates and registration commit.
`load_registry` reads it into `Claim`s; `claims.scorecard` measures and judges them."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Optional

from ..core.errors import not_a_command
from .verdicts import rule_from_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Claim", "CLAIMS", "REGISTRY", "load_registry"]

REGISTRY = Path(str(files(__package__) / "registry.toml"))


@dataclass(frozen=True)
class Claim:
    """One registered row: a claim of a paper tested at one scale (`registry.toml`)."""

    id: str
    scale: str
    paper: str
    where: str
    title: str
    statement: str
    metric: str
    kind: str               # "finding" or "sanity"
    measure: str            # a key of MEASURES
    rule: object
    boundary_from: str      # "paper" or "lab"
    registered: str         # a commit, or "post hoc"
    params: dict = field(default_factory=dict)
    preconditions: dict = field(default_factory=dict)
    spec: dict = field(default_factory=dict, compare=False, repr=False)   # the registry entry, resolved

    @property
    def row(self) -> str:
        return f"{self.id}@{self.scale}"


def load_registry(text: Optional[str] = None) -> tuple[Claim, ...]:
    """The registry's rows (`registry.toml`, or its `text`), each with its claim's fields resolved."""
    data = tomllib.loads(text if text is not None else REGISTRY.read_text())
    rows = []
    for claim in data["claim"]:
        shared = {k: v for k, v in claim.items() if k != "row"}
        for row in claim["row"]:
            spec = {**shared, **row}
            rows.append(Claim(id=spec["id"], scale=spec["scale"], paper=spec["paper"], where=spec["where"],
                              title=spec["title"], statement=spec["statement"], metric=spec["metric"],
                              kind=spec["kind"], measure=spec["measure"], rule=rule_from_spec(spec["rule"]),
                              boundary_from=spec["boundary_from"], registered=spec["registered"],
                              params=dict(spec.get("params", {})), preconditions=dict(spec.get("preconditions", {})),
                              spec=spec))
    return tuple(rows)


CLAIMS: tuple[Claim, ...] = load_registry()


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
