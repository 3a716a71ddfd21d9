"""The tree shows the architecture: few loose modules, small modules, one raw table per locator.

The import direction itself is `make lint`'s import-linter contract (pyproject.toml).
"""

from __future__ import annotations

from cryptoetl.models import LocatorKind
from cryptoetl.sources import REGISTRY
from tests.support import REPO

PACKAGE = REPO / "src" / "cryptoetl"
MAX_LOOSE = 8
MAX_LINES = 500


def test_at_most_eight_modules_stand_loose_in_the_package() -> None:
    """Everything else lives in a package that names its concern."""
    loose = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(loose) <= MAX_LOOSE, loose


def test_no_module_is_over_500_lines() -> None:
    """Past 500 lines a module is split."""
    sizes = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_no_module_shadows_the_standard_library() -> None:
    """`csv.py`, `json.py`... inside a package confuse readers and tools."""
    import sys

    names = {path.stem for path in PACKAGE.rglob("*.py")}
    assert names & set(sys.stdlib_module_names) == set()


def test_every_registered_source_says_where_its_raw_records_go() -> None:
    """A source's raw table follows from its locator kind alone, never from its name."""
    for source_class in REGISTRY:
        assert isinstance(source_class.info.locator, LocatorKind), source_class.info.name
