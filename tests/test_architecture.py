"""docs/architecture.md matches the tree: every path it names exists, and every module of the library is named."""

import re
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text()
LIBRARY = ROOT / "src" / "spac_hf"


def test_every_path_named_exists():
    paths = set(re.findall(r"`((?:src|recipes|benchmarks|space|tests|docs|results)/[\w./]*)`", DOC))
    assert len(paths) > 10
    assert [p for p in sorted(paths) if not (ROOT / p).exists()] == []


def test_every_library_module_is_named():
    modules = [p.name for p in LIBRARY.iterdir() if p.suffix == ".py" and p.name != "__init__.py"]
    modules += [f"{p.name}/" for p in LIBRARY.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    table = DOC.split("## Modules", 1)[1].split("## One iteration", 1)[0]
    # A subpackage is one row (`hub/`), or one row per module (`run/loop.py`).
    assert [m for m in sorted(modules) if f"| `{m}` |" not in table and f"| `{m}" not in table] == []
    for package in ("hub", "tasks", "run"):
        submodules = [p.name for p in (LIBRARY / package).glob("*.py") if not p.name.startswith("_")]
        assert [m for m in submodules if f"`{m}`" not in table and f"`{package}/{m}`" not in table] == [], package
