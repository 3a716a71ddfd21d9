"""Turn one fetched batch into what the loader writes. Pure: no I/O.

Every item becomes either an accepted record (a raw row plus a unified record) or a
rejection with its reason; nothing is dropped. A transform that raises (a bug in a source)
or an accepted record whose locator cannot be stored is rejected with the reason, so one bad
record never stops the batch. A batch that carries columns (a CSV block its source validated
a column at a time) has no items: it is handed to the loader as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from cryptoetl.db.load import RawRow
from cryptoetl.models import Accepted, Batch, LocatorKind, Rejection, SourceRecord, UnifiedRecord
from cryptoetl.sources.base import SourceInfo
from cryptoetl.transform.csv_columns import FileRows


class Transformer(Protocol):
    """What preparing a batch needs of a source (a live source, or a history endpoint)."""

    @property
    def info(self) -> SourceInfo: ...

    def transform(self, item: SourceRecord, batch: Batch) -> Accepted | Rejection: ...


@dataclass(slots=True)
class PreparedBatch:
    """A batch split into what is loaded and what is rejected, aligned by index."""

    fetched: int
    raw_rows: list[RawRow] = field(default_factory=list)
    records: list[UnifiedRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    # a file source's block, validated a column at a time (loaded by `db.csv_load`)
    file_rows: FileRows | None = None


def _raw_text(item: SourceRecord) -> str:
    if item.raw_text is not None:
        return item.raw_text
    return _json(item.payload)


def _json(payload: Mapping[str, Any]) -> str:
    return orjson.dumps(payload, default=str).decode()


def _file_path(batch: Batch) -> str:
    """The file a file source's batch came from (its `file_path` context), else its label."""
    return str(batch.context.get("file_path") or batch.label)


def _reject(item: SourceRecord, batch: Batch, reason: str) -> Rejection:
    locator = f"{batch.label}#{item.position}"
    return Rejection(locator=locator, raw=_raw_text(item), reason=reason)


def _raw_row(accepted: Accepted, batch: Batch, kind: LocatorKind) -> RawRow | str:
    """The raw row of an accepted record, or why it cannot be stored."""
    locator = accepted.locator
    payload = _json(accepted.item.payload)
    if kind is LocatorKind.OBSERVATION:
        if locator.at is None:
            return "accepted record has no source timestamp in its locator"
        # the unified key is how a stored record is found again (a re-run stores nothing
        # twice) and how lineage finds it in its page: the locator must be that key
        if (locator.key, locator.at) != (accepted.record.coin_id, accepted.record.observed_at):
            return (
                f"accepted record's locator {locator} is not its observation "
                f"({accepted.record.coin_id} at {accepted.record.observed_at.isoformat()})"
            )
        return RawRow(locator.key, locator.at, None, None, payload)
    if locator.line is None:
        return "accepted record has no line number in its locator"
    return RawRow(locator.key, None, locator.line, _file_path(batch), payload)


def prepare_batch(source: Transformer, batch: Batch) -> PreparedBatch:
    """Transform every item of `batch` with `source.transform`; a batch of columns (already
    validated by its source) is passed on as it is."""
    if isinstance(batch.columns, FileRows):
        rows = batch.columns
        return PreparedBatch(rows.fetched, rejections=list(rows.rejections), file_rows=rows)
    prepared = PreparedBatch(fetched=len(batch.items))
    for item in batch.items:
        try:
            outcome = source.transform(item, batch)
        except Exception as exc:  # a bug in a source must not lose the batch
            prepared.rejections.append(
                _reject(item, batch, f"transform failed: {type(exc).__name__}: {exc}")
            )
            continue
        if isinstance(outcome, Rejection):
            prepared.rejections.append(outcome)
            continue
        if outcome.record.source != batch.source:
            prepared.rejections.append(
                _reject(item, batch, f"record of source {outcome.record.source!r} in this batch")
            )
            continue
        raw = _raw_row(outcome, batch, source.info.locator)
        if isinstance(raw, str):
            prepared.rejections.append(_reject(item, batch, raw))
            continue
        prepared.raw_rows.append(raw)
        prepared.records.append(outcome.record)
    return prepared
