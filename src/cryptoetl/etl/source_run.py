"""One source's run: fetch batch after batch, load each in one transaction, record the end.

The outcome (also written to `etl_runs` and `checkpoints`):

- `success`: the source was read to the end, every record loaded, none rejected;
- `partial`: some data was committed but not all of it: records were rejected, or fetching
  failed after at least one batch was committed (the cursor lets the next run resume there);
- `failed`: the source gave no data (its first fetch failed, or it returned no batch at all),
  or loading failed (a database error, a lost connection): the error says which. Batches
  committed before a load failure stay committed, with the cursor that covers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import asyncpg
import structlog

from cryptoetl.db import checkpoints, csv_load, load, partitions, runs
from cryptoetl.db.pool import DATABASE_ERRORS, Connection, Pool
from cryptoetl.errors import RunEndedError, SourceError, describe
from cryptoetl.etl.late_ends import LateEnds
from cryptoetl.etl.prepare import PreparedBatch, prepare_batch
from cryptoetl.models import Batch, LocatorKind, RunCounts, RunStatus, SourceOutcome
from cryptoetl.sources.base import Source, SourceClass, SourceContext
from cryptoetl.transform.csv_columns import EPOCH

log = structlog.get_logger(__name__)

# Batches with more items than this are transformed in a worker thread, so that a large CSV
# chunk does not hold the event loop (and the API sharing it) for its whole transform.
THREAD_TRANSFORM_ABOVE = 2000
END_ATTEMPTS = 3


class ProgressSink(Protocol):
    """Where a run reports progress (the CLI draws it on stderr). Must not block."""

    def source_started(self, source: str, run_id: int) -> None:
        """The source's run began."""

    def batch_loaded(self, source: str, counts: RunCounts, batches: int, label: str) -> None:
        """A batch was committed; `counts` and `batches` are the run's totals so far."""

    def source_finished(self, outcome: SourceOutcome) -> None:
        """The source's run ended (any status)."""


@dataclass(frozen=True, slots=True)
class RunSetup:
    """What every source run of one `Pipeline.execute` shares."""

    pool: Pool
    context: SourceContext
    progress: ProgressSink | None
    # where an end that cannot be written now goes, to be written when the database is back
    late_ends: LateEnds | None = None


def root_cause(exc: BaseException) -> BaseException:
    """The server's own error behind a client-side one (a transaction that could not be closed
    because the server ended the connection reports the server's reason, not the symptom)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, asyncpg.PostgresError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


CursorWriter = Callable[[Connection], Awaitable[None]]


async def load_batch(
    pool: Pool,
    run: runs.StartedRun,
    kind: LocatorKind,
    batch: Batch,
    prepared: PreparedBatch,
    *,
    write_cursor: CursorWriter | None = None,
) -> RunCounts:
    """One transaction: raw rows, unified upsert, rejections, cursor, the run's counters; the
    partitions they go to are made first, in a short transaction of their own.

    The cursor is the source's checkpoint (`batch.cursor`), or what `write_cursor` writes (a
    backfill's cursor) in the same transaction.
    """
    async with pool.acquire() as conn:
        await partitions.ensure_for_batch(
            conn, kind, _observed_times(prepared), batch.meta.fetched_at
        )
        async with conn.transaction():
            return await _write_batch(conn, run, kind, batch, prepared, write_cursor)


def _observed_times(prepared: PreparedBatch) -> Iterator[datetime]:
    """The observation times a batch writes (a CSV block's span: its first and last)."""
    yield from (record.observed_at for record in prepared.records)
    block = prepared.file_rows
    if block is not None and len(block.rows):
        first, last = int(block.rows.observed_us.min()), int(block.rows.observed_us.max())
        yield EPOCH + timedelta(microseconds=first)
        yield EPOCH + timedelta(microseconds=last)


async def _write_batch(
    conn: Connection,
    run: runs.StartedRun,
    kind: LocatorKind,
    batch: Batch,
    prepared: PreparedBatch,
    write_cursor: CursorWriter | None,
) -> RunCounts:
    """The batch's writes, inside the caller's transaction."""
    if prepared.file_rows is not None:
        upserted = await csv_load.load_file_rows(conn, run.source, run.run_id, prepared.file_rows)
    else:
        await load.ensure_staging(conn)
        raw_ids = await load.store_raw(
            conn, kind, run.source, run.run_id, batch.meta.fetched_at, prepared.raw_rows
        )
        rows, duplicates = load.stage_rows(prepared.records, raw_ids)
        upserted = await load.upsert_unified(conn, run.source, run.run_id, rows, duplicates)
    await load.store_rejections(conn, run.source, run.run_id, prepared.rejections)
    if write_cursor is None:
        await checkpoints.move_cursor(conn, run.source, batch.cursor)
    else:
        await write_cursor(conn)
    counts = RunCounts(
        fetched=prepared.fetched,
        inserted=upserted.inserted,
        updated=upserted.updated,
        unchanged=upserted.unchanged,
        rejected=len(prepared.rejections),
    )
    if not await runs.add_batch(conn, run.run_id, counts):
        raise RunEndedError(run.run_id, run.source)
    return counts


async def _prepare(source: Source, batch: Batch) -> PreparedBatch:
    if len(batch.items) > THREAD_TRANSFORM_ABOVE:
        return await asyncio.to_thread(prepare_batch, source, batch)
    return prepare_batch(source, batch)


_END = object()


async def read_ahead(
    source: Source, batches: AsyncIterator[Batch]
) -> AsyncGenerator[tuple[Batch, PreparedBatch], None]:
    """Yield prepared batches while the next one is already being fetched and transformed.

    Fetching and transforming are Python work (or waiting on an upstream), loading is the
    database's work: overlapping them keeps both busy. At most one batch waits ready. An error
    of the read-ahead is raised only when its turn comes, after every earlier batch was
    yielded, so batches before a failed fetch are still loaded and committed.
    """
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=1)

    async def produce() -> None:
        try:
            async for batch in batches:
                await queue.put((batch, await _prepare(source, batch)))
            await queue.put(_END)
        except Exception as exc:  # handed over in order; the consumer decides what it means
            await queue.put(exc)
        finally:
            closer: Callable[[], object] | None = getattr(batches, "aclose", None)
            if closer is not None:
                result = closer()
                if asyncio.iscoroutine(result):
                    await result

    producer = asyncio.create_task(produce())
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            yield item  # type: ignore[misc]
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer


@dataclass
class _State:
    counts: RunCounts
    batches: int = 0
    error: str | None = None
    # where the run is, and where it stopped if it failed: "setup", "fetch", "load",
    # "internal", "cancelled"; None once the source was read to the end
    stage: str | None = None


def _status(state: _State) -> tuple[RunStatus, str | None, bool]:
    """Status, error and whether the source was read to the end."""
    if state.stage == "fetch":
        status = RunStatus.PARTIAL if state.batches else RunStatus.FAILED
        return status, state.error, False
    if state.stage is not None:
        return RunStatus.FAILED, state.error, False
    if state.batches == 0:
        return RunStatus.FAILED, "the source returned no data (no batch at all)", False
    if state.counts.rejected:
        noun = "record was" if state.counts.rejected == 1 else "records were"
        return RunStatus.PARTIAL, f"{state.counts.rejected} {noun} rejected", True
    return RunStatus.SUCCESS, None, True


async def _record_end(
    pool: Pool, run: runs.StartedRun, status: RunStatus, error: str | None, read_to_end: bool
) -> runs.FinishedRun | None:
    """Finish the run row and the checkpoint in one transaction, through a fresh connection.

    Retried a few times: the failure being recorded may be a lost connection, and other
    pooled connections may be dead too.
    """
    last: BaseException | None = None
    for _ in range(END_ATTEMPTS):
        try:
            async with pool.acquire() as conn, conn.transaction():
                finished = await runs.end(conn, run.run_id, status, error, read_to_end=read_to_end)
                if finished is None:  # reaped meanwhile: keep what the reaper wrote
                    return await runs.get_finished(conn, run.run_id)
                return finished
        except DATABASE_ERRORS as exc:
            last = exc
    log.error("run_end_not_recorded", error=describe(last) if last else None)
    return None


async def run_source(
    setup: RunSetup, run: runs.StartedRun, factory: SourceClass | None
) -> SourceOutcome:
    """Run one source to its end and record the outcome; never raises but on cancellation."""
    structlog.contextvars.bind_contextvars(run_id=run.run_id, source=run.source)
    clock = time.monotonic()
    state = _State(RunCounts())
    if setup.progress is not None:
        setup.progress.source_started(run.source, run.run_id)
    try:
        await _fetch_and_load(setup, run, factory, state)
    except asyncio.CancelledError as exc:
        # `task.cancel(reason)` says why (the service: "cancelled: the service is stopping")
        given = exc.args[0] if exc.args and isinstance(exc.args[0], str) else None
        state.stage = "cancelled"
        state.error = given or "the run was cancelled (the process is stopping)"
        await asyncio.shield(_finish(setup, run, state, clock))
        raise
    return await _finish(setup, run, state, clock)


async def _fetch_and_load(
    setup: RunSetup, run: runs.StartedRun, factory: SourceClass | None, state: _State
) -> None:
    label: str | None = None
    state.stage = "setup"
    try:
        if factory is None:
            state.stage, state.error = "fetch", f"no source named {run.source!r} is installed"
            return
        source = factory(setup.context)
        async with setup.pool.acquire() as conn:
            cursor = await checkpoints.cursor(conn, run.source)
        state.stage = "fetch"
        prepared_batches = read_ahead(source, source.fetch(cursor))
        try:
            async for batch, prepared in prepared_batches:
                state.stage, label = "load", batch.label
                state.counts += await load_batch(
                    setup.pool, run, source.info.locator, batch, prepared
                )
                state.batches += 1
                if setup.progress is not None:
                    setup.progress.batch_loaded(run.source, state.counts, state.batches, label)
                state.stage = "fetch"
        finally:
            await prepared_batches.aclose()
        state.stage = None
    except SourceError as exc:
        state.stage, state.error = "fetch", describe(exc)
    except RunEndedError as exc:
        state.stage, state.error = "load", describe(exc)
    except DATABASE_ERRORS as exc:
        if state.stage == "load":
            state.error = f"loading batch {label!r} failed: {describe(root_cause(exc))}"
        elif state.stage == "fetch":  # a network error the source did not wrap
            state.error = f"fetching failed: {describe(exc)}"
        else:
            state.stage, state.error = "setup", f"reading the checkpoint failed: {describe(exc)}"
    except Exception as exc:
        log.exception("source_run_crashed")
        state.stage, state.error = "internal", f"internal error: {describe(exc)}"


async def _finish(
    setup: RunSetup, run: runs.StartedRun, state: _State, clock: float
) -> SourceOutcome:
    status, error, read_to_end = _status(state)
    finished = await _record_end(setup.pool, run, status, error, read_to_end)
    if finished is None:  # the database is gone: report what this process knows
        later = "could not be recorded"
        if setup.late_ends is not None:
            setup.late_ends.add(run.run_id, status, error, read_to_end)
            later = "is recorded when the database is back"
        finished = runs.FinishedRun(
            run_id=run.run_id,
            source=run.source,
            status=RunStatus.FAILED,
            started_at=run.started_at,
            finished_at=datetime.now(UTC),
            counts=state.counts,
            batches=state.batches,
            error=f"{error or status.value}; the run's end {later}",
        )
    outcome = SourceOutcome(
        source=run.source,
        run_id=run.run_id,
        status=finished.status,
        counts=finished.counts,
        started_at=finished.started_at,
        finished_at=finished.finished_at,
        error=finished.error,
        batches=finished.batches,
    )
    level = {RunStatus.FAILED: logging.ERROR, RunStatus.PARTIAL: logging.WARNING}
    log.log(
        level.get(outcome.status, logging.INFO),
        "source_run_finished",
        status=outcome.status.value,
        seconds=round(time.monotonic() - clock, 3),
        fetched=outcome.counts.fetched,
        inserted=outcome.counts.inserted,
        updated=outcome.counts.updated,
        unchanged=outcome.counts.unchanged,
        rejected=outcome.counts.rejected,
        batches=outcome.batches,
        error=outcome.error,
    )
    if setup.progress is not None:
        setup.progress.source_finished(outcome)
    return outcome
