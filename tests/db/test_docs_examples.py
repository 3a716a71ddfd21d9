"""The GET examples of the docs answer as written: every `curl` of README.md and docs/*.md that
reads `http://localhost:8000/...` is sent, with its headers, to the real app on a database
loaded with the three sources' fixtures, and must answer 200.

So an example that names a parameter, a value or a route the API no longer has fails here,
not in a reader's terminal. (Examples that write, the admin ones, are checked by their own
tests; those that need a value from an earlier call, `$CURSOR` or `$ETAG`, are left out.)
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import httpx
import pytest

from cryptoetl.config import Settings
from tests.support import REPO

MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
BASE = "http://localhost:8000"


@dataclass(frozen=True)
class Example:
    page: str
    path: str
    headers: tuple[tuple[str, str], ...]


def _examples() -> list[Example]:
    found = []
    for page in PAGES:
        for block in FENCE.findall(page.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #", 1)[0].split(" | ", 1)[0].strip()
                if not line.startswith("curl ") or "$" in line:
                    continue
                words = shlex.split(line)
                if "-X" in words:  # writes: the admin examples
                    continue
                urls = [word for word in words if word.startswith(BASE)]
                if not urls:
                    continue
                headers = tuple(
                    (name.strip(), value.strip())
                    for flag, header in itertools.pairwise(words)
                    if flag == "-H"
                    for name, _, value in [header.partition(":")]
                )
                path = urls[0].removeprefix(BASE)
                found.append(Example(str(page.relative_to(REPO)), path, headers))
    return found


EXAMPLES = _examples()


def test_the_docs_have_examples_to_check() -> None:
    """The extraction finds the examples (an empty list would make the test below vacuous)."""
    assert len(EXAMPLES) >= 20
    assert {example.page for example in EXAMPLES} >= {"README.md", "docs/api.md", "docs/assets.md"}


@pytest.fixture
async def fixture_client(
    loaded_fixtures: Settings, make_client: MakeClient
) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(loaded_fixtures) as client:
        yield client


async def test_every_get_example_answers_200(fixture_client: httpx.AsyncClient) -> None:
    """Each example, as written, answers 200 on the fixtures."""
    failures = []
    for example in EXAMPLES:
        response = await fixture_client.get(example.path, headers=dict(example.headers))
        if response.status_code != 200:
            failures.append(f"{example.page}: {example.path} -> {response.status_code}")
    assert failures == []
