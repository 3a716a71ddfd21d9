"""What flows through a run: records, batches, acceptances and rejections (standard library
only).

The flow of one source through a run:

    Source.fetch(cursor)  ->  Batch(items=[SourceRecord, ...], cursor=...)      (I/O)
    Source.transform(item, batch)  ->  Accepted | Rejection                    (pure)
    pipeline: one transaction per batch: raw rows, unified upsert, rejections, checkpoint
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class LocatorKind(StrEnum):
    """How a source's raw records are located, and so which raw table keeps them.

    `observation`: the source's coin id and its own timestamp (the HTTP sources, `raw_http`);
    `file_line`: a file's fingerprint and a line number (file sources, `raw_csv`).
    """

    OBSERVATION = "observation"
    FILE_LINE = "file_line"


@dataclass(frozen=True, slots=True)
class UnifiedRecord:
    """One observation of one coin by one source, in the unified shape.

    `observed_at` is the source's own timestamp (timezone-aware, UTC), never the fetch time;
    `(source, coin_id, observed_at)` identifies the observation.
    """

    source: str
    coin_id: str
    name: str | None
    symbol: str | None
    price_usd: float
    market_cap: float | None
    volume_24h: float | None
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """How a batch was obtained: the request, its answer, and what it cost."""

    url: str
    status: int
    fetched_at: datetime
    elapsed_ms: float
    attempts: int = 1
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record exactly as the source sent it.

    `payload` is the parsed JSON object (or the CSV row keyed by its header); `raw_text` is the
    original text when the source has one (a CSV line); `position` is the record's index in its
    response, or its line number in a file.
    """

    payload: Mapping[str, Any]
    position: int
    raw_text: str | None = None


@dataclass(frozen=True, slots=True)
class RawLocator:
    """Where a raw record comes from; unique per raw table, so re-runs store nothing twice.

    For the HTTP sources `key` is the source's coin id and `at` its own timestamp; for CSV
    `key` is the file fingerprint and `line` the line number.
    """

    key: str
    at: datetime | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.key}:{self.line}"
        if self.at is not None:
            return f"{self.key}@{self.at.isoformat()}"
        return self.key


@dataclass(frozen=True, slots=True)
class Accepted:
    """A record that passed validation, with the unified row and the raw row's locator."""

    record: UnifiedRecord
    locator: RawLocator
    item: SourceRecord


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that failed validation: nothing a source sent is silently dropped."""

    locator: str
    raw: str
    reason: str
    file: str | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """A unit of work that is committed in one transaction together with `cursor`.

    `cursor` is the checkpoint cursor that holds once this batch is committed (for CoinGecko
    the next page of the current cycle, for CSV the file fingerprint and offset reached).
    `context` carries what the source's pure `transform` needs besides the record (for CSV the
    header mapping, the file path and its modification time).
    """

    source: str
    items: Sequence[SourceRecord]
    meta: ResponseMeta
    cursor: Mapping[str, Any]
    label: str
    context: Mapping[str, Any] = field(default_factory=dict)
    # A file source's block already validated a column at a time (a
    # `cryptoetl.transform.csv_columns.FileRows`): loaded as it is, with no item to transform.
    columns: Any = None
