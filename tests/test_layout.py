"""The package's shape: rooms re-export exactly their modules' public names, nothing shadows a
module, importing has no side effects, library code holds no test tooling and never locates
results through `__file__`, and every CLI follows the one pattern (with a console script)."""
import ast
import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import analysis
from analysis import core, cost, evidence, heads, lab

ROOT = Path(__file__).resolve().parents[1]
ROOMS = (core, heads, cost, lab, evidence)
LIBRARY = sorted((ROOT / "analysis").rglob("*.py"))


def _submodules(package) -> set[str]:
    return {p.stem for p in Path(package.__path__[0]).iterdir()
            if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}


def _stub_modules(package) -> set[str]:
    stub = Path(package.__file__).with_suffix(".pyi")
    return {node.module for node in ast.parse(stub.read_text()).body if isinstance(node, ast.ImportFrom)}


@pytest.mark.parametrize("room", ROOMS, ids=lambda r: r.__name__)
def test_a_room_exports_every_public_module_through_its_stub(room):
    """A room's `__init__.pyi` star-imports each public module: its `__all__` is the room's list."""
    public_modules = {m for m in _submodules(room) if not m.startswith("_")} - {"notebook"}
    assert _stub_modules(room) == public_modules  # core.notebook is imported as a module by notebooks
    for module in public_modules:
        names = importlib.import_module(f"{room.__name__}.{module}").__all__
        assert set(names) <= set(room.__all__) and all(getattr(room, n) is not None for n in names), module


@pytest.mark.parametrize("package", (analysis,) + ROOMS, ids=lambda p: p.__name__)
def test_no_exported_name_shadows_a_module(package):
    assert not set(package.__all__) & _submodules(package)
    for name in package.__all__:
        assert getattr(package, name) is not None
    with pytest.raises(AttributeError):
        getattr(package, "no_such_name")


def test_top_level_holds_classes_and_functions_of_the_rooms():
    cli = {m for m in _submodules(analysis) if not m.startswith("_")} - {r.__name__.split(".")[1] for r in ROOMS}
    assert set(core.COMMANDS) == cli | {"cost"}  # analysis.cost is a room with a __main__
    room_names = {n for r in ROOMS for n in r.__all__}
    assert set(analysis.__all__) <= room_names - cli and not any(n.isupper() for n in analysis.__all__)
    assert analysis.CostAnalysis is cost.CostAnalysis and analysis.fit is lab.fit


@pytest.mark.slow  # jedi parses the package: a few seconds
def test_editors_see_concrete_types_through_the_lazy_exports():
    """Jedi (IPython's and JupyterLab's completion engine) reads the stubs: a lazily exported name has
    its real definition, at the top level and in a room."""
    import jedi
    source = "from analysis import CostAnalysis, fit\nfrom analysis.heads import AttentionCapture\n"
    script = jedi.Script(source + "CostAnalysis\nfit\nAttentionCapture\n", path=ROOT / "probe.py",
                         project=jedi.Project(ROOT))
    found = [[(d.type, d.full_name) for d in script.infer(line=line, column=1)] for line in (3, 4, 5)]
    assert found == [[("class", "analysis.cost.counter.CostAnalysis")], [("function", "analysis.lab.train.fit")],
                     [("class", "analysis.heads.attention.AttentionCapture")]]


@pytest.mark.slow  # a fresh interpreter importing every room: ~12 s
def test_import_has_no_side_effects():
    code = """
import sys, warnings
import matplotlib, torch, timm, seaborn, scipy.stats, sklearn.datasets, captum.attr, nbclient, pandas  # their own filters
backend, filters = matplotlib.get_backend(), list(warnings.filters)
import analysis
assert "analysis.heads.attention" not in sys.modules and "analysis.cost.counter" not in sys.modules
import analysis.core.plotting, analysis.core.notebook, analysis.heads, analysis.cost.variant_table, analysis.lab.experiments
assert matplotlib.get_backend() == backend, (backend, matplotlib.get_backend())
assert warnings.filters == filters, [f for f in warnings.filters if f not in filters]
print("ok")
"""
    env = {"PATH": "/usr/bin:/bin", "MPLBACKEND": "svg"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_has_no_test_tooling_and_no_file_relative_paths(path):
    tree = ast.parse(path.read_text())
    assert not {m for m in _imports(tree) if m.split(".")[0] in ("unittest", "pytest", "mock")}
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "__file__"]


CLIS = [("analysis.head_similarity", "analysis.head_similarity"),
        ("analysis.head_ablation", "analysis.head_ablation"),
        ("analysis.attention_maps", "analysis.attention_maps"), ("analysis.gradcam", "analysis.gradcam"),
        ("analysis.cost", "analysis.cost.__main__"),
        ("analysis.breakdown", "analysis.breakdown"), ("analysis.roofline", "analysis.roofline"),
        ("analysis.throughput", "analysis.throughput"),
        ("analysis.train", "analysis.train"), ("analysis.ablations", "analysis.ablations"),
        ("analysis.make_figures", "analysis.make_figures")]


def test_every_cli_follows_the_pattern_and_has_a_console_script():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    targets = {v.split(":")[0] for v in scripts.values()}
    for name, module in CLIS:
        mod = importlib.import_module(module)
        parser = mod.build_parser()
        assert parser.prog == f"python -m {name}" and callable(mod.run) and callable(mod.main)
        assert module in targets, name
    assert all(v.endswith(":main") for v in scripts.values()) and len(scripts) == len(CLIS)


def test_cli_help_is_parsed_without_torch():
    """Every CLI builds its parser (help, choices, validators) before torch, timm, pandas or matplotlib load."""
    code = """
import sys, importlib
from analysis.core.names import COMMANDS
for c in COMMANDS:
    importlib.import_module("analysis.cost.__main__" if c == "cost" else f"analysis.{c}").build_parser().format_help()
print(sorted(k for k in ("torch", "timm", "pandas", "matplotlib") if k in sys.modules))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr[-2000:]


def test_names_offered_by_the_clis_are_the_librarys():
    """Each list is defined once, in core.names; the library's registries are keyed by it."""
    from analysis.core import names
    assert tuple(heads.AMP_DTYPES) == names.AMP_CHOICES and tuple(lab.CAM_METHODS) == names.CAM_METHODS
    assert tuple(sorted(lab.TABLES)) == names.SUITE_TABLES and heads.METRICS == names.HEAD_METRICS


LAYERS = {"core": 0, "heads": 1, "cost": 1, "lab": 2, "evidence": 3}


def test_rooms_are_layered_without_cycles():
    """A room imports only rooms of a lower layer (core < heads, cost < lab < evidence), at module level or
    inside functions: no cycle between rooms."""
    upward = []
    for path in LIBRARY:
        room = path.relative_to(ROOT / "analysis").parts[0]
        if room not in LAYERS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module:
                target = node.module.split(".")[0]
                if target in LAYERS and target != room and LAYERS[target] >= LAYERS[room]:
                    upward.append(f"{path.relative_to(ROOT)} imports {node.module}")
    assert upward == []


def test_modules_and_functions_stay_small():
    """No library module over 400 lines, no function over 60 (split by concept, as timm's model files are)."""
    long = []
    for path in LIBRARY + sorted((ROOT / "shvit").rglob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > 400:
            long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1}")
    assert long == []
