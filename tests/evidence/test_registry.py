"""The claims registry: every row is complete and well-formed, and a row registered before its numbers
was registered in an ancestor commit, older than the commit that measured it, and not edited since."""
import re
from pathlib import Path

import pandas as pd
import pytest

from analysis.evidence import claims as sc
from analysis.evidence import registry
from analysis.evidence.provenance import POST_HOC, file_at, git, is_prospective

REPO = Path(__file__).resolve().parents[2]
COMMIT = re.compile(r"^[0-9a-f]{40}$")
GATES = {"stem_grid", "attention_grid", "quality_floor", "bracketed"}


def _history() -> bool:
    return git("rev-parse", "--is-shallow-repository", cwd=REPO) == "false"


needs_history = pytest.mark.skipif(not _history(), reason="needs the project's full git history")


def test_every_row_is_complete():
    rows = registry.load_registry()
    assert len({c.row for c in rows}) == len(rows) >= 20
    for c in rows:
        assert c.measure in sc.MEASURES, c.row
        assert c.kind in ("finding", "sanity") and c.boundary_from in ("paper", "lab") and c.scale in (
            "full", "micro", "meso"), c.row
        assert set(c.preconditions) <= GATES, c.row
        assert c.registered == POST_HOC or COMMIT.match(c.registered), c.row
    assert {c.row for c in registry.CLAIMS} == {c.row for c in rows}


def test_the_registrys_settings_are_the_ones_the_code_applies():
    """level, power and multiplicity are declared in the registry; the code must apply exactly those."""
    from analysis.core.intervals import LEVEL
    from analysis.evidence.power import POWER

    assert registry.tomllib.loads(registry.REGISTRY.read_text())["settings"] == {"level": LEVEL, "power": POWER,
                                                                   "multiplicity": "holm"}


def test_a_registry_text_round_trips():
    text = registry.REGISTRY.read_text()
    assert [c.spec for c in registry.load_registry(text)] == [c.spec for c in registry.CLAIMS]


@needs_history
def test_registered_rows_are_unchanged_since_their_registration_commit():
    """A registered row's definition (all but `registered`) equals the one in its registration commit."""
    registered = [c for c in registry.CLAIMS if c.registered != POST_HOC]
    assert registered, "no row is registered before its numbers"
    for c in registered:
        text = file_at(c.registered, registry.REGISTRY)
        assert text is not None, f"{c.row}: {c.registered} has no registry"
        then = {r.row: r.spec for r in registry.load_registry(text)}
        assert c.row in then, f"{c.row} is not in its registration commit"
        strip = lambda spec: {k: v for k, v in spec.items() if k != "registered"}  # noqa: E731
        assert strip(then[c.row]) == strip(c.spec), f"{c.row} was edited after its registration"


@needs_history
@pytest.mark.artifacts
def test_registration_precedes_measurement_in_the_committed_scorecard():
    """Each prospective row of results/claims.csv: registration commit an ancestor of, and older than,
    its measurement commit; every other row is post hoc, and the registry agrees."""
    card = pd.read_csv(REPO / "results" / "claims.csv")
    registered = {c.row: c.registered for c in registry.CLAIMS}
    assert set(card.row) <= set(registered)
    for r in card.itertuples():
        assert r.registered == registered[r.row], r.row
        assert bool(r.prospective) == is_prospective(r.registered, r.measured, REPO), r.row
        if r.prospective:
            assert git("merge-base", "--is-ancestor", r.registered, r.measured, cwd=REPO) is not None
            t0, t1 = (int(git("show", "-s", "--format=%ct", c, cwd=REPO)) for c in (r.registered, r.measured))
            assert t0 < t1, r.row
        else:
            assert r.registered == POST_HOC or r.measured in ("uncommitted", "unknown") or not is_prospective(
                r.registered, r.measured, REPO)
    assert card.prospective.any(), "no row of the committed scorecard is prospective"


@needs_history
def test_is_prospective_known_answers():
    head = git("rev-parse", "HEAD", cwd=REPO)
    first = git("rev-list", "--max-parents=0", "HEAD", cwd=REPO).splitlines()[0]
    assert is_prospective(first, head, REPO)
    assert not is_prospective(head, first, REPO)          # the wrong way round
    assert not is_prospective(head, head, REPO)           # the same commit is not older
    assert not is_prospective(POST_HOC, head, REPO)
    assert not is_prospective(first, "uncommitted", REPO)
