"""Repository rules that keep the suite and the packages importable."""

from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_test_modules_have_unique_basenames():
    # pytest's default import mode imports test files by basename: two test_x.py in
    # different folders make collection fail.
    names = Counter(p.name for p in (REPO / "tests").rglob("test_*.py"))
    assert [n for n, count in names.items() if count > 1] == []


def test_no_top_level_operator_package():
    # A top-level `operator` package would shadow the standard library module.
    assert not (REPO / "operator" / "__init__.py").exists()
    assert not (REPO / "webhook" / "__init__.py").exists()
