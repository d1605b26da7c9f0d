"""The README's promises: its two commands, and a gallery of figures that notebooks produce."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def test_quick_start_commands_exist_in_makefile():
    makefile = (REPO / "Makefile").read_text()
    for target in ("figures", "test"):
        assert f"make {target}" in README
        assert re.search(rf"^{target}:", makefile, re.M)
    assert "make test" in (REPO / ".ci" / "run").read_text()


@pytest.mark.artifacts
def test_every_gallery_figure_exists_and_comes_from_a_notebook():
    shown = re.findall(r"\]\((figures/[\w.-]+\.png)\)", README)
    assert shown, "the README shows no figures"
    sources = {p.name: p.read_text() for p in (REPO / "notebooks").glob("*.ipynb")}
    for figure in shown:
        assert (REPO / figure).is_file(), f"{figure} is shown in the README but missing"
        stem = Path(figure).stem
        makers = [name for name, text in sources.items() if f'\\"{stem}\\"' in text or f"'{stem}'" in text]
        assert makers, f"no notebook writes {figure}"
