"""The docs a newcomer walks stay true to the repository: links, targets, paths, settings.

Checked over README.md, every page of docs/, and the other notes of the repository
(data/README.md, tests/fixtures/README.md, bench/*.md); not over docs/_pending/, whose notes are
amendments on their way into the pages:

- every relative link (and image) resolves to a file of the repository, and its `#anchor` to a
  heading of that page;
- every `make X` in code resolves to a Makefile target, every `cryptoetl X Y` to a command;
- every repository path in code (`src/...`, `tests/...`, `etl/pipeline.py`...) exists, and
  every dotted `cryptoetl.x.y` names a module or something in one;
- every setting of every settings class in `cryptoetl` is documented in docs/operations.md (or,
  while its feature is landing, in a docs/_pending/*.md note);
- every page of docs/ can be reached from the README by links;
- the README stays short.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

import cryptoetl
from cryptoetl.cli.main import build_parser
from tests.support import REPO

DOCS = REPO / "docs"
README = REPO / "README.md"
# the other READMEs and notes of the repository are held to the same rules
OTHER_NOTES = [REPO / "data" / "README.md", REPO / "tests" / "fixtures" / "README.md"]
PAGES = [README, *sorted(DOCS.glob("*.md")), *OTHER_NOTES, *sorted(REPO.glob("bench/*.md"))]
README_MAX_LINES = 220
EXPECTED_PAGES = (
    "architecture",
    "api",
    "sources",
    "assets",
    "operations",
    "deployment",
    "dashboard",
    "testing",
    "benchmarks",
)
PACKAGE = REPO / "src" / "cryptoetl"
# Folders of the repository a path in the docs may start with.
TOP_DIRS = {"src", "tests", "docs", "bench", "data", "migrations", ".ci"}
# Paths made at run time, never committed, and the notes of features in flight (they come and
# go): the docs may name them.
GENERATED = (".venv", ".cryptoetl", "./.cryptoetl", "bench/.work", ".env", "docs/_pending")
FENCE = re.compile(r"^```.*?$(.*?)^```\s*$", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
MAKE = re.compile(r"(?:^|[\s;&|(])make\s+((?:[A-Z_]+=\S+\s+)*)([a-z][\w-]*)")
# `cryptoetl X` as a command: at the start of a line (after VAR=value), after a path
# (`.venv/bin/cryptoetl`) or after `exec <service>` (docker compose)
CLI = re.compile(
    r"(?:^[ \t]*(?:[A-Z_]+=\S+\s+)*|/|exec\s+\w+\s+)cryptoetl"
    r"\s+([a-z][\w-]*)(?:[ \t]+([a-z][\w-]*))?",
    re.M,
)
DOTTED = re.compile(r"^cryptoetl(\.[A-Za-z_]\w*)+$")


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _prose(text: str) -> str:
    """The text without fenced code blocks (links in code are not links)."""
    return FENCE.sub("", text)


def _code(text: str) -> Iterator[str]:
    """Every fenced code block's body and every inline code span."""
    for block in FENCE.finditer(text):
        yield block.group(1)
    for span in CODE_SPAN.finditer(_prose(text)):
        yield span.group(2)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for match in HEADING.finditer(_prose(page.read_text())):
        slug = _slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _links(page: Path) -> Iterator[str]:
    for match in LINK.finditer(_prose(page.read_text())):
        yield match.group(1)


def test_the_pages_exist_and_the_readme_links_each() -> None:
    """README's table of pages is the way in: every page is there and linked."""
    linked = set(_links(README))
    missing = [name for name in EXPECTED_PAGES if f"docs/{name}.md" not in linked]
    assert missing == []
    assert all((DOCS / f"{name}.md").is_file() for name in EXPECTED_PAGES)


def test_the_readme_is_short() -> None:
    """The README says what it is, the two commands, a tour, and where to read on."""
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


def test_every_page_can_be_reached_from_the_readme() -> None:
    """A newcomer who starts at the README can walk to every page of docs/ by its links."""
    reached, frontier = {README}, [README]
    while frontier:
        page = frontier.pop()
        for target in _links(page):
            path = (page.parent / target.partition("#")[0]).resolve()
            if path.suffix == ".md" and path.is_file() and path not in reached:
                reached.add(path)
                frontier.append(path)
    unreached = [_rel(page) for page in sorted(DOCS.glob("*.md")) if page.resolve() not in reached]
    assert unreached == []


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_relative_link_resolves(page: Path) -> None:
    """Links and images point at files of the repository, anchors at headings of the page."""
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.is_relative_to(REPO) or not resolved.exists():
            broken.append(f"{target}: no such file")
            continue
        if anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {_rel(resolved)}")
    assert broken == []


def _make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z_][\w-]*)\s*:(?!=)", text, re.M))


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_make_target_mentioned_exists(page: Path) -> None:
    """`make X` in a page's code is a target of the Makefile."""
    targets = _make_targets()
    mentioned = {
        match.group(2) for code in _code(page.read_text()) for match in MAKE.finditer(code)
    }
    assert sorted(mentioned - targets) == []


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_cryptoetl_command_mentioned_exists(page: Path) -> None:
    """`cryptoetl etl run`, `cryptoetl assets rebuild`... are commands of the CLI."""
    commands = _subcommands(build_parser())
    unknown = []
    for code in _code(page.read_text()):
        for match in CLI.finditer(code):
            first, second = match.group(1), match.group(2)
            if first not in commands:
                unknown.append(first)
                continue
            below = _subcommands(commands[first])
            if below and second not in below:
                unknown.append(f"{first} {second}")
    assert unknown == []


def _path_candidates(code: str) -> Iterator[str]:
    for raw in code.split():
        token = raw.split("=", 1)[1] if re.match(r"^[A-Z_]+=", raw) else raw
        token = token.strip("`'\",;:()[]")
        if token.startswith("./") and not token.startswith("./.cryptoetl"):
            token = token[2:]
        if token:
            yield token


def _resolve(token: str) -> bool | None:
    """True/False: the path exists or not; None: the token is not a repository path."""
    if token.startswith(GENERATED) or "://" in token or token.startswith(("/", "~", "$")):
        return None
    pattern = re.sub(r"<[^>]+>", "*", token).replace("NNNN_name", "[0-9][0-9][0-9][0-9]_*")
    first = pattern.split("/", 1)[0]
    if "/" in pattern and first in TOP_DIRS:
        base = REPO
    elif "/" in pattern and (PACKAGE / first).is_dir() and re.search(r"(\.\w+|/)$", pattern):
        base = PACKAGE  # `etl/pipeline.py`: a path inside the package
    elif "/" not in pattern and re.fullmatch(r"[\w.-]+\.py", pattern):
        # a bare module file name: it exists somewhere in the repository
        return any(
            not part.startswith(".venv") for found in REPO.rglob(pattern) for part in [_rel(found)]
        )
    else:
        return None
    if any(ch in pattern for ch in "*?["):
        return any(base.glob(pattern.rstrip("/")))
    return (base / pattern).exists()


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_repository_path_mentioned_exists(page: Path) -> None:
    """Paths in code (`tests/db/test_new_source.py`, `db/load.py`, ...) are in the repository."""
    missing = sorted(
        {
            token
            for code in _code(page.read_text())
            for token in _path_candidates(code)
            if _resolve(token) is False
        }
    )
    assert missing == []


def _names_something(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        target: object = module
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_dotted_name_mentioned_exists(page: Path) -> None:
    """`cryptoetl.db.assets`, `cryptoetl.etl.reaper.reap_dead_runs`... can be imported."""
    names = {
        token
        for code in _code(page.read_text())
        for token in _path_candidates(code)
        if DOTTED.match(token)
    }
    assert sorted(name for name in names if not _names_something(name)) == []


def _settings_classes() -> list[type[BaseSettings]]:
    """Every settings class defined in the cryptoetl package (importing each module)."""
    for info in pkgutil.walk_packages(cryptoetl.__path__, prefix="cryptoetl."):
        importlib.import_module(info.name)
    found: list[type[BaseSettings]] = []
    pending: list[type[BaseSettings]] = [BaseSettings]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            pending.append(sub)
            if sub.__module__.startswith("cryptoetl.") and sub not in found:
                found.append(sub)
    return found


def _env_names(cls: type[BaseSettings]) -> Iterator[str]:
    for name, field in cls.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        yield (alias or field.alias or name).upper()


def test_every_setting_is_documented() -> None:
    """A setting of any settings class (the service's, each source's) appears, as `NAME`, in
    docs/operations.md, or in a docs/_pending/*.md note while its feature is landing."""
    documented = (DOCS / "operations.md").read_text()
    documented += "".join(note.read_text() for note in sorted(DOCS.glob("_pending/*.md")))
    classes = _settings_classes()
    assert any(cls.__name__ == "Settings" for cls in classes)
    assert len(classes) >= 4  # the service's and the three sources'
    missing = sorted(
        f"{name} ({cls.__module__}.{cls.__name__})"
        for cls in classes
        for name in _env_names(cls)
        if f"`{name}`" not in documented
    )
    assert missing == []
