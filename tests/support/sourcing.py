"""Helpers for the source tests: run a source to the end, split what it produced."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from cryptoetl.config import Settings
from cryptoetl.models import Accepted, Batch, Rejection
from cryptoetl.sources import REGISTRY
from cryptoetl.sources.base import Source, SourceContext
from cryptoetl.transform.csv_columns import FileRows
from tests.support.csv_golden import accepted_of
from tests.support.upstream import Upstream


@dataclass
class RecordingEvents:
    """SourceEvents that keep what they were told."""

    waits: list[tuple[str, float]] = field(default_factory=list)
    retries: list[tuple[str, str, float]] = field(default_factory=list)
    requests: list[tuple[str, int | None, float]] = field(default_factory=list)

    def rate_limit_wait(self, source: str, seconds: float) -> None:
        self.waits.append((source, seconds))

    def retry(self, source: str, reason: str, delay: float) -> None:
        self.retries.append((source, reason, delay))

    def request(self, source: str, status: int | None, seconds: float) -> None:
        self.requests.append((source, status, seconds))


@dataclass
class Outcome:
    """Everything one fetch yielded, transformed."""

    batches: list[Batch]
    accepted: list[Accepted]
    rejected: list[Rejection]


def make_source(name: str, settings: Settings, **context: Any) -> Source:
    cls = REGISTRY.get(name)
    assert cls is not None, f"no source named {name!r}"
    return cls(SourceContext(settings=settings, **context))


async def run_source(source: Source, cursor: Mapping[str, Any] | None = None) -> Outcome:
    """Fetch every batch and transform every item, as the pipeline would (a batch of columns,
    validated by its source, gives its rows and rejections as they are)."""
    outcome = Outcome([], [], [])
    async for batch in source.fetch(cursor or {}):
        outcome.batches.append(batch)
        if isinstance(batch.columns, FileRows):
            outcome.accepted.extend(accepted_of(batch))
            outcome.rejected.extend(batch.columns.rejections)
        for item in batch.items:
            result = source.transform(item, batch)
            if isinstance(result, Accepted):
                outcome.accepted.append(result)
            else:
                outcome.rejected.append(result)
    return outcome


def gaps(upstream: Upstream, api: str) -> list[float]:
    """Seconds between consecutive requests to `api`, as the server saw them arrive."""
    times = [request.at for request in upstream.requests_to(api)]
    return [later - earlier for earlier, later in pairwise(times)]
