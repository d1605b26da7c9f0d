"""The README's promises: its two commands, and a gallery of figures that notebooks produce."""
import re
import shutil
import subprocess
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


def _test_commands(text: str) -> list[str]:
    """The pytest and `make test*` commands a document gives: inline code, code-block lines and comment lines
    without inline code (environment.yml's)."""
    blocks = "\n".join(re.findall(r"```[^\n]*\n(.*?)```", text, re.S)).splitlines()
    comments = [line.lstrip("#") for line in text.splitlines() if line.startswith("#") and "`" not in line]
    spans = re.findall(r"`([^`\n]+)`", text) + blocks + comments
    commands = {s.split("  #")[0].strip() for s in spans}
    return sorted(c for c in commands if re.search(r"(^|\s)pytest\s", c) or re.match(r"make test\S*$", c))


def _makefile_recipe(target: str) -> str:
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, f"the Makefile has no target {target}"
    return recipe.group(1).replace("$$", "$")


def _outputs_in_a_temporary_folder(command: str) -> bool:
    """SHVIT_LAB_OUTPUT set to `$(mktemp -d)`, directly or through a variable assigned from it first."""
    value = re.search(r"SHVIT_LAB_OUTPUT=(\$\(mktemp -d\)|\S+)\s.*pytest", command, re.S)
    if value is None:
        return False
    folder = value.group(1).strip('"')
    if folder == "$(mktemp -d)":
        return True
    variable = re.fullmatch(r"\$\{?(\w+)\}?", folder)
    return variable is not None and re.search(rf"\b{variable.group(1)}=\$\(mktemp -d\)", command) is not None


@pytest.mark.parametrize("document", ["README.md", "environment.yml"])
def test_every_documented_test_command_writes_to_a_temporary_folder(document):
    """A test run never rewrites the committed figures/ and results/: each documented command points the
    output root at a fresh temporary folder (a `make` target: its recipe does)."""
    commands = _test_commands((REPO / document).read_text())
    if document == "README.md":
        assert {"make test", "make test-fast"} <= set(commands), commands
        assert any(c.startswith("SHVIT_LAB_OUTPUT=") and "pytest" in c for c in commands), commands
    for command in commands:
        shell = _makefile_recipe(command.split()[1]) if command.startswith("make ") else command
        assert _outputs_in_a_temporary_folder(shell), f"{document}: `{command}` writes into the project"


def test_the_check_tells_a_temporary_folder_from_the_project():
    assert _outputs_in_a_temporary_folder("out=$(mktemp -d) && SHVIT_LAB_OUTPUT=$out python -m pytest tests")
    assert _outputs_in_a_temporary_folder("SHVIT_LAB_OUTPUT=$(mktemp -d) pytest tests notebooks --nbval-lax")
    assert not _outputs_in_a_temporary_folder("pytest tests notebooks --nbval-lax --nbval-current-env")
    assert not _outputs_in_a_temporary_folder("SHVIT_LAB_OUTPUT=. pytest tests")
    assert not _outputs_in_a_temporary_folder("out=results && SHVIT_LAB_OUTPUT=$out pytest tests")
    assert _test_commands("run `pytest tests -x` or\n```\nmake test   # all\n```\n") == ["make test", "pytest tests -x"]


def _make_dry_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-n", "-B", "venv", *args], cwd=REPO, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_offers_the_cpu_build_of_pytorch_and_the_readme_says_how():
    """`make venv TORCH=cpu` installs torch and torchvision from PyTorch's CPU index before the project; the
    default installs PyPI's build; any other value is refused before anything runs."""
    cpu, default, bad = _make_dry_run("TORCH=cpu"), _make_dry_run(), _make_dry_run("TORCH=gpu")
    index = "--index-url https://download.pytorch.org/whl/cpu"
    cpu_lines = cpu.stdout.splitlines()
    first = next(i for i, line in enumerate(cpu_lines) if index in line)
    assert "torch torchvision" in cpu_lines[first] and "test \"cpu\" = default ||" in cpu_lines[first]
    assert first < next(i for i, line in enumerate(cpu_lines) if "pip install --quiet -e" in line)
    assert 'test "default" = default ||' in default.stdout          # the default skips the CPU index
    assert bad.returncode != 0 and "TORCH must be default or cpu, not 'gpu'" in bad.stderr
    assert "make venv TORCH=cpu" in README
