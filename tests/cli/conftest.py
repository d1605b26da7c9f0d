"""Bad inputs a careless or hurried user gives every CLI: files that are not what they claim."""
import numpy as np
import pytest
from PIL import Image

from tests.cli.own_model import BAD_FACTORIES, BROKEN_MODULE


@pytest.fixture
def bad(tmp_path):
    """`{name: path}` of bad files and folders under `tmp_path/in` (watch `tmp_path` for writes), model
    factories that fail included (`factories.py`, `broken.py`: `tests.cli.own_model`).
    (No unwritable-folder case: the tests may run as root, who can write anywhere.)"""
    root = tmp_path / "in"
    root.mkdir()
    (root / "factories.py").write_text(BAD_FACTORIES)
    (root / "broken.py").write_text(BROKEN_MODULE)
    (root / "text.pth").write_text("hello, I am not a checkpoint\n" * 10)
    (root / "random.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "random.safetensors").write_bytes(np.random.default_rng(1).bytes(4096))
    (root / "empty").mkdir()
    (root / "broken").mkdir()
    for i in range(3):
        (root / "broken" / f"b{i}.jpg").write_bytes(b"not an image")
    (root / "flat").mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(root / "flat" / f"im{i}.png")
    (root / "a_file").write_text("x")
    (root / "unrelated.json").write_text('{"mine": true}\n')
    (root / "unrelated.csv").write_text("a\n1\n")
    paths = {p.name.replace(".", "_"): str(p) for p in root.iterdir()}
    paths["missing"] = str(root / "does-not-exist" / "x")
    return paths
