"""Pure parts of a run: turning a batch into rows and rejections, progress and the summary."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta

import structlog

from cryptoetl.cli.progress import TerminalProgress, format_summary
from cryptoetl.etl.prepare import prepare_batch
from cryptoetl.log import configure_logging
from cryptoetl.models import (
    Accepted,
    Batch,
    LocatorKind,
    RawLocator,
    Rejection,
    ResponseMeta,
    RunCounts,
    RunStatus,
    SourceOutcome,
    SourceRecord,
)
from cryptoetl.sources import load_settings
from cryptoetl.sources.base import SourceContext, SourceInfo
from tests.support.pipeline_fakes import FakeFeed, FakeSource, coin

NOW = datetime(2025, 2, 9, 17, 0, tzinfo=UTC)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def batch(source: str, *payloads: dict[str, object]) -> Batch:
    return Batch(
        source=source,
        items=[SourceRecord(payload=p, position=i) for i, p in enumerate(payloads)],
        meta=ResponseMeta(url="fake://x", status=200, fetched_at=NOW, elapsed_ms=1.0),
        cursor={},
        label="page 1",
    )


class Exploding(FakeSource):
    """A source whose transform has a bug for one record."""

    def transform(self, item: SourceRecord, b: Batch) -> Accepted | Rejection:
        if item.payload.get("id") == "coin-2":
            raise KeyError("quotes")
        return super().transform(item, b)


def test_prepare_splits_a_batch_and_never_drops_a_record() -> None:
    """Accepted records get raw rows in order; a bad one and a crashing one become rejections."""
    context = SourceContext(load_settings(env_file=None))
    source = Exploding(SourceInfo("coingecko", LocatorKind.OBSERVATION), FakeFeed([]), context)
    prepared = prepare_batch(
        source, batch("coingecko", coin(1), {"id": "x", "last_updated": "?"}, coin(2), coin(3))
    )
    assert prepared.fetched == 4
    assert [r.coin_id for r in prepared.records] == ["coin-1", "coin-3"]
    assert [(r.key, r.at) for r in prepared.raw_rows] == [
        ("coin-1", NOW),
        ("coin-3", NOW),
    ]
    assert '"price":1.0' in prepared.raw_rows[0].payload
    reasons = [r.reason for r in prepared.rejections]
    assert reasons == ["price: missing", "transform failed: KeyError: 'quotes'"]
    assert prepared.rejections[1].locator == "page 1#2"
    assert '"id":"coin-2"' in prepared.rejections[1].raw


class OffByAMinute(FakeSource):
    """A source whose locator time is not its observation time (a bug: an HTTP source's
    locator is the unified key by which a stored record is found again)."""

    def transform(self, item: SourceRecord, b: Batch) -> Accepted | Rejection:
        accepted = super().transform(item, b)
        if isinstance(accepted, Rejection) or item.payload.get("id") != "coin-2":
            return accepted
        at = accepted.record.observed_at + timedelta(minutes=1)
        return Accepted(accepted.record, RawLocator(accepted.record.coin_id, at), item)


def test_an_observation_whose_locator_is_not_its_key_is_rejected_with_the_reason() -> None:
    context = SourceContext(load_settings(env_file=None))
    source = OffByAMinute(SourceInfo("coingecko", LocatorKind.OBSERVATION), FakeFeed([]), context)
    prepared = prepare_batch(source, batch("coingecko", coin(1), coin(2), coin(3)))
    assert [r.key for r in prepared.raw_rows] == ["coin-1", "coin-3"]
    assert [r.coin_id for r in prepared.records] == ["coin-1", "coin-3"]
    [rejection] = prepared.rejections
    assert rejection.reason == (
        "accepted record's locator coin-2@2025-02-09T17:01:00+00:00 is not its observation "
        "(coin-2 at 2025-02-09T17:00:00+00:00)"
    )


def outcome(source: str, status: RunStatus, error: str | None = None) -> SourceOutcome:
    return SourceOutcome(
        source=source,
        run_id=1,
        status=status,
        counts=RunCounts(fetched=1000, inserted=750, updated=5, unchanged=245, rejected=0),
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=2.25),
        error=error,
    )


def test_summary_table_has_a_row_per_source_with_counts_and_error() -> None:
    """Columns line up; numbers are right-aligned; the error comes last, whole."""
    table = format_summary(
        [
            outcome("coingecko", RunStatus.SUCCESS),
            outcome("coinpaprika", RunStatus.FAILED, "coinpaprika: gave up after 4 attempts"),
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == [
        "source",
        "status",
        "fetched",
        "inserted",
        "updated",
        "unchanged",
        "rejected",
        "duration",
        "error",
    ]
    assert lines[1].split() == ["coingecko", "success", "1000", "750", "5", "245", "0", "2.2s"]
    assert lines[2].endswith("2.2s  coinpaprika: gave up after 4 attempts")
    assert lines[1].index("1000") == lines[2].index("1000")


def test_progress_is_plain_lines_off_a_terminal() -> None:
    """A log gets a line per batch."""
    plain = io.StringIO()
    sink = TerminalProgress(plain, live=False)
    sink.source_started("coingecko", 7)
    sink.batch_loaded("coingecko", RunCounts(fetched=250, inserted=250), 1, "page 1")
    sink.source_finished(outcome("coingecko", RunStatus.SUCCESS))
    lines = plain.getvalue().splitlines()
    assert lines[0] == "coingecko: run 7 started"
    assert lines[1].startswith("coingecko: page 1: 250 rows (")
    assert lines[2] == "coingecko: success, 1000 rows"


def test_live_progress_prints_log_lines_above_itself() -> None:
    """On a terminal: a rich live display; a log line logged meanwhile is printed whole, on a
    line of its own above the display (never glued to the progress line), and the logs get
    their stream back when the display closes."""
    live = io.StringIO()
    configure_logging("INFO", "json", stream=live)
    log = structlog.get_logger("test")
    sink = TerminalProgress(live, live=True)
    sink.source_started("coingecko", 7)
    log.info("csv_file_reading", file="x" * 200)
    sink.batch_loaded("coingecko", RunCounts(fetched=250), 1, "page 1")
    sink.source_finished(outcome("coingecko", RunStatus.SUCCESS))
    sink.close()
    log.info("after_progress")
    screen = [ANSI.sub("", line.split("\r")[-1]) for line in live.getvalue().split("\n")]
    logged = [line for line in screen if '"event"' in line]
    assert len(logged) == 2
    assert all(line.startswith("{") and line.endswith("}") for line in logged)
    assert json.loads(logged[0])["file"] == "x" * 200  # whole, not wrapped
    assert "coingecko  success  1,000 rows" in screen
    assert screen.index("coingecko  success  1,000 rows") < screen.index(logged[1])
