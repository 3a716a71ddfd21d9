"""What a source is, and what it is given.

A source is a class with a `SourceInfo` (its name, how its raw records are located, where it
ranks when assets are named, its settings) that fetches (I/O, no database) and transforms
(pure). The pipeline drives it:

    source = REGISTRY.get(name)(context)
    async for batch in source.fetch(cursor):        # cursor: the checkpoint's last cursor
        for item in batch.items:
            outcome = source.transform(item, batch)  # Accepted | Rejection, never raises
        ... one transaction: raw rows, unified upsert, rejections, checkpoint := batch.cursor

`fetch` raises `SourceError` subclasses (see `cryptoetl.errors`) when it cannot go on; batches
already yielded stay committed, and the cursor they carried lets the next run resume. A file
source may instead yield batches with no items and `columns` set (the CSV source: a block
already validated a column at a time, `cryptoetl.transform.csv_columns.FileRows`), which the
pipeline loads as they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from cryptoetl.config import Settings, SourceSettings
from cryptoetl.models import Accepted, Batch, LocatorKind, Rejection, SourceRecord
from cryptoetl.sources.ratelimit import RateLimits, TokenBucket

if TYPE_CHECKING:
    import aiohttp


class SourceEvents(Protocol):
    """What a source reports as it works (the metrics module implements this)."""

    def rate_limit_wait(self, source: str, seconds: float) -> None:
        """The token bucket or a Retry-After made the source wait `seconds`."""

    def retry(self, source: str, reason: str, delay: float) -> None:
        """A transient failure (`reason`: "429", "503", "timeout", ...) is retried in `delay` s."""

    def request(self, source: str, status: int | None, seconds: float) -> None:
        """One HTTP request ended with `status` (None: no answer) after `seconds`."""


class NoEvents:
    """SourceEvents that records nothing."""

    def rate_limit_wait(self, source: str, seconds: float) -> None:
        return None

    def retry(self, source: str, reason: str, delay: float) -> None:
        return None

    def request(self, source: str, status: int | None, seconds: float) -> None:
        return None


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SourceContext:
    """Everything a source may use: settings, the run's shared HTTP session, a clock, events.

    `rate_limits` keeps each source's token bucket across runs; pass the same `RateLimits` to
    every run of the process so budgets and Retry-After hold from one run to the next (None:
    each run paces itself from scratch). A source given no `session` opens its own.
    """

    settings: Settings
    session: aiohttp.ClientSession | None = None
    events: SourceEvents = field(default_factory=NoEvents)
    now: Callable[[], datetime] = utc_now
    rate_limits: RateLimits | None = None

    def bucket(self, source: str, per_minute: int) -> TokenBucket:
        """The token bucket for `source`: kept in `rate_limits`, or a fresh one."""
        spacing = self.settings.rate_limit_delay
        if self.rate_limits is not None:
            return self.rate_limits.bucket(source, per_minute, spacing)
        return TokenBucket(per_minute, min_interval=spacing)


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the rest of the service needs to know about a source, without running it.

    - `name`: the source's name in settings, runs, the API and the unified table;
    - `locator`: how its raw records are located (`observation`: coin id + the source's own
      time, kept in `raw_http`; `file_line`: file fingerprint + line, kept in `raw_csv`);
    - `match_rank`: whose name and symbol a new asset takes (lower first);
    - `catalog`: its coin ids are its own catalog (one id, one coin), so two of its ids with
      one name and symbol are two coins, never one asset;
    - `settings`: its `SourceSettings` class (its environment variables), if it has any.
    """

    name: str
    locator: LocatorKind
    match_rank: int = 100
    catalog: bool = False
    settings: type[SourceSettings] | None = None


class Source(Protocol):
    """One upstream. Implementations need no base class."""

    @property
    def info(self) -> SourceInfo:
        """What the source is (its class's `SourceInfo`)."""
        ...

    def fetch(self, cursor: Mapping[str, Any]) -> AsyncIterator[Batch]:
        """Yield batches from where `cursor` says the last run got to.

        Raises `SourceError` (transient failures already retried) when it cannot continue.
        """
        ...

    def transform(self, item: SourceRecord, batch: Batch) -> Accepted | Rejection:
        """Validate one record and map it to the unified shape. Pure: no I/O, never raises."""
        ...


class SourceClass(Protocol):
    """A source class: its `info`, and building it for one run."""

    @property
    def info(self) -> SourceInfo:
        """What the source is: its name, locator, rank and settings."""
        ...

    def __call__(self, context: SourceContext) -> Source:
        """The source for one run (its context: settings, HTTP session, clock, events)."""
        ...
