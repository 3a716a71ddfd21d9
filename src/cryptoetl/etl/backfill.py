"""Backfill: a source's history from its history endpoint, coin by coin, into the same
unified history as the live runs, resumable, within the source's request budget.

    backfill = Backfill(settings, pool, rate_limits=...)       # the service's RateLimits
    started = await backfill.begin(BackfillRequest("coingecko", coins=["bitcoin"], days=30))
    outcome = await backfill.execute(started)                  # or: await backfill.run(request)

`begin` checks the request (`BackfillRequestError`), resolves `top N` from the latest snapshot,
and inserts the run row (trigger `backfill`; `RunInProgressError` when a backfill of the source
is already running: live runs of the source are not in the way) with its progress row.

`execute` takes each coin in turn and each of its chunks (one request, see
`cryptoetl.sources.history`) in order, the next chunk's request going out while the current
one loads; a chunk is loaded by the same loader as live batches (its raw records as a page of
`raw_http_pages`, the unified upsert on (source, coin_id, observed_at), rejections), in one
transaction with the coin's cursor, so re-running or overlapping stores nothing twice
and a killed backfill resumes at the first chunk it had not committed. A coin that fails (an
unknown coin, a range the plan refuses) is recorded with the provider's answer and the next
coin goes on; when the provider gives no answer at all (retries exhausted: down, or still
throttling), the backfill stops there, since the next coins would fail alike, and the same
request later resumes. A 429 whose Retry-After is longer than MAX_RETRY_DELAY
waits it out (the source's bucket is deferred) and asks again, up to `RATE_LIMIT_ROUNDS` times.

The outcome: `success` when every coin was loaded whole and nothing was rejected; `partial`
when some coin failed or records were rejected but data was loaded; `failed` when no coin
could be loaded. The error names each failed coin with the provider's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

import aiohttp
import structlog

from cryptoetl.assets.overrides import load_overrides
from cryptoetl.assets.sync import sync_assets
from cryptoetl.config import Settings
from cryptoetl.db import backfill as queries
from cryptoetl.db import runs
from cryptoetl.db.pool import DATABASE_ERRORS, Connection, Pool
from cryptoetl.errors import (
    AssetOverridesError,
    BackfillRequestError,
    RetriesExhaustedError,
    RunEndedError,
    RunInProgressError,
    SourceError,
    describe,
)
from cryptoetl.etl.backfill_request import BackfillRange, check
from cryptoetl.etl.live_runs import LiveRuns
from cryptoetl.etl.owner import HEARTBEAT_SECONDS, this_process
from cryptoetl.etl.pipeline import MAPPING_ERRORS
from cryptoetl.etl.prepare import PreparedBatch, prepare_batch
from cryptoetl.etl.source_run import load_batch
from cryptoetl.models import BackfillRequest, BackfillStarted, Batch, RunCounts, RunStatus
from cryptoetl.sources.base import NoEvents, SourceContext, SourceEvents, utc_now
from cryptoetl.sources.history import Chunk, CoinName, History, coin_error
from cryptoetl.sources.history_registry import HISTORY, open_history
from cryptoetl.sources.http_client import open_http_session
from cryptoetl.sources.ratelimit import RateLimits

log = structlog.get_logger(__name__)

SessionFactory = Callable[[Settings], AbstractAsyncContextManager[aiohttp.ClientSession]]
RATE_LIMIT_ROUNDS = 3
T = TypeVar("T")
ERROR_CHARS = 2000


@dataclass(frozen=True, slots=True)
class StartedBackfill:
    """A backfill whose run row exists: what it will do."""

    run: runs.StartedRun
    range: BackfillRange
    chunks: list[Chunk]

    @property
    def run_id(self) -> int:
        return self.run.run_id

    def summary(self) -> BackfillStarted:
        """What the admin API answers."""
        return BackfillStarted(
            run_id=self.run.run_id,
            source=self.range.source,
            started_at=self.run.started_at,
            coins=list(self.range.coins),
            since=self.range.since,
            until=self.range.until,
            requests=len(self.range.coins) * len(self.chunks),
        )


@dataclass
class BackfillOutcome:
    """How a backfill ended (also in `etl_runs` and `backfill_runs`)."""

    run_id: int
    source: str
    status: RunStatus = RunStatus.FAILED
    counts: RunCounts = field(default_factory=RunCounts)
    chunks: int = 0
    coins_loaded: list[str] = field(default_factory=list)
    coin_errors: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    stopped_at: str | None = None  # the coin after whose failure the backfill stopped


class BackfillProgress(Protocol):
    """Where a backfill reports progress (the CLI prints it). Must not block."""

    def chunk_loaded(self, coin: str, label: str, counts: RunCounts) -> None:
        """A chunk was committed; `counts` are that chunk's."""

    def coin_failed(self, coin: str, error: str) -> None:
        """A coin could not be (fully) backfilled."""


class NoProgress:
    """A BackfillProgress that reports nothing."""

    def chunk_loaded(self, coin: str, label: str, counts: RunCounts) -> None:
        return None

    def coin_failed(self, coin: str, error: str) -> None:
        return None


class Backfill:
    """Runs backfills (see the module docstring). One per process; give it the process's
    `RateLimits` so its requests share each source's bucket with the scheduled ETL."""

    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        *,
        rate_limits: RateLimits | None = None,
        events: SourceEvents | None = None,
        owner: str | None = None,
        session_factory: SessionFactory = open_http_session,
        progress: BackfillProgress | None = None,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        now: Callable[[], datetime] = utc_now,
        live: LiveRuns | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.rate_limits = rate_limits if rate_limits is not None else RateLimits()
        self.events: SourceEvents = events if events is not None else NoEvents()
        self.owner = owner or str(this_process())
        self.session_factory = session_factory
        self.progress: BackfillProgress = progress if progress is not None else NoProgress()
        self.heartbeat_seconds = heartbeat_seconds
        self.now = now
        # this process's live runs (shared with its ETL pipeline in the service)
        self.live = live if live is not None else LiveRuns(pool)

    async def begin(self, request: BackfillRequest) -> StartedBackfill:
        """Check the request, resolve its coins, insert its run; see the module docstring."""
        checked = check(request, self.now())
        await self.live.reap(self.owner, heartbeat_seconds=self.heartbeat_seconds)
        async with self.pool.acquire() as conn, conn.transaction():
            coins = list(checked.coins)
            if checked.top is not None:
                top = await queries.top_coins(conn, checked.source, checked.top)
                if not top:
                    raise BackfillRequestError(
                        f"top {checked.top}: there is no {checked.source} snapshot to rank "
                        f"coins by market cap yet; run `cryptoetl etl run --source "
                        f"{checked.source}` first, or name the coins"
                    )
                coins = list(dict.fromkeys([*coins, *(row["coin_id"] for row in top)]))
            names = await queries.known_names(conn, checked.source, coins)
            chunks = HISTORY[checked.source].chunks(checked.since, checked.until, self.now())
            resolved = BackfillRange(
                checked.source, coins, checked.top, checked.since, checked.until, names
            )
            run = await queries.start_run(
                conn,
                checked.source,
                self.owner,
                coins,
                checked.since,
                checked.until,
                len(coins) * len(chunks),
            )
            if run is None:
                running = await queries.running_run(conn, checked.source)
                raise RunInProgressError([running] if running else [], [checked.source])
        self.live.started([run.run_id])
        log.info(
            "backfill_started",
            run_id=run.run_id,
            source=checked.source,
            coins=len(coins),
            since=checked.since.isoformat(),
            until=checked.until.isoformat(),
            chunks=len(chunks),
        )
        return StartedBackfill(run, resolved, chunks)

    async def run(self, request: BackfillRequest) -> BackfillOutcome:
        """`begin` then `execute` (the CLI)."""
        return await self.execute(await self.begin(request))

    async def execute(self, started: StartedBackfill) -> BackfillOutcome:
        """Backfill every coin of `started`, record the end; raises only on cancellation."""
        outcome = BackfillOutcome(started.run_id, started.range.source)
        beat = asyncio.create_task(self._heartbeat(started.run_id))
        try:
            async with self.session_factory(self.settings) as session:
                context = SourceContext(
                    self.settings, session, self.events, rate_limits=self.rate_limits
                )
                async with open_history(started.range.source, context) as history:
                    names = await self._names(history, started.range)
                    for coin in started.range.coins:
                        await self._coin(history, started, coin, names.get(coin), outcome)
                        if outcome.stopped_at is not None:
                            break
        except asyncio.CancelledError as exc:
            given = exc.args[0] if exc.args and isinstance(exc.args[0], str) else None
            outcome.error = given or "the backfill was cancelled (the process is stopping)"
            outcome.status = RunStatus.FAILED
            await asyncio.shield(self._finish(started, outcome))
            raise
        except RunEndedError as exc:
            outcome.error = describe(exc)
        except DATABASE_ERRORS as exc:
            outcome.error = f"loading failed: {describe(exc)}"
        except Exception as exc:
            log.exception("backfill_crashed")
            outcome.error = f"internal error: {describe(exc)}"
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        await self._finish(started, outcome)
        return outcome

    async def _names(self, history: History, target: BackfillRange) -> dict[str, CoinName]:
        """Each coin's name and symbol: its latest live observation, else the provider's list
        (one request); a coin found nowhere gets none (mapped once a live run names it)."""
        names = {coin: CoinName(*found) for coin, found in target.names.items()}
        missing = [coin for coin in target.coins if coin not in names]
        if missing:
            try:
                names.update(await _rate_limit_rounds(lambda: history.names(missing)))
            except SourceError as exc:
                log.warning("backfill_names_not_found", coins=len(missing), error=describe(exc))
        if target.source == "coingecko" and any(coin not in names for coin in target.coins):
            # CoinGecko's ids are slugs of names, as asset ids are: a coin still unnamed whose
            # id is an asset the shipped overrides declare takes that asset's name and symbol
            try:
                declared = {a.asset_id: a for a in (await asyncio.to_thread(load_overrides)).assets}
            except AssetOverridesError as exc:
                log.warning("asset_overrides_unreadable", error=str(exc))
                declared = {}
            for coin in target.coins:
                if coin not in names and coin in declared:
                    names[coin] = CoinName(declared[coin].name, declared[coin].symbol)
        return names

    async def _coin(
        self,
        history: History,
        started: StartedBackfill,
        coin: str,
        name: CoinName | None,
        outcome: BackfillOutcome,
    ) -> None:
        target = started.range
        async with self.pool.acquire() as conn:
            cursor = (
                await queries.cursors(conn, target.source, [coin], target.since, target.until)
            ).get(coin)
            if cursor is not None and cursor.state == "done":
                todo: list[Chunk] = []
            else:
                todo = [c for c in started.chunks if cursor is None or c.end > cursor.done_until]
            skipped = len(started.chunks) - len(todo)
            await queries.add_progress(conn, started.run_id, current=coin, chunks=skipped)
        if not todo:  # done before (a re-run), or nothing left of the range: count it done
            await self._count_done(started, coin, outcome)
            return
        ahead: asyncio.Task[tuple[Batch, PreparedBatch]] | None = None
        try:
            for index, chunk in enumerate(todo):
                task = ahead or asyncio.create_task(_read(history, coin, chunk, name))
                ahead = None
                try:
                    batch, prepared = await task
                except SourceError as exc:
                    error = coin_error(history, coin, chunk, exc)
                    await self._coin_failed(started, coin, error, outcome)
                    if isinstance(exc, RetriesExhaustedError):  # the provider is down or
                        outcome.stopped_at = coin  # throttling: the next coins would fail too
                    return
                last = index == len(todo) - 1
                if not last:  # the next request goes out while this one loads
                    ahead = asyncio.create_task(_read(history, coin, todo[index + 1], name))
                move = queries.CursorMove(
                    target.source,
                    coin,
                    target.since,
                    target.until,
                    chunk.end,
                    "done" if last else "running",
                    started.run_id,
                )
                counts = await load_batch(
                    self.pool,
                    started.run,
                    history.info.locator,
                    batch,
                    prepared,
                    write_cursor=functools.partial(_chunk_done, move, coin),
                )
                outcome.counts += counts
                outcome.chunks += 1
                self.progress.chunk_loaded(coin, batch.label, counts)
        finally:
            if ahead is not None:  # a load failed, or the backfill was cancelled
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ahead
        outcome.coins_loaded.append(coin)

    async def _count_done(
        self, started: StartedBackfill, coin: str, outcome: BackfillOutcome
    ) -> None:
        target = started.range
        async with self.pool.acquire() as conn, conn.transaction():
            await queries.move_cursor(
                conn,
                queries.CursorMove(
                    target.source,
                    coin,
                    target.since,
                    target.until,
                    target.until,
                    "done",
                    started.run_id,
                ),
            )
            await queries.add_progress(conn, started.run_id, coins=1)
        outcome.coins_loaded.append(coin)

    async def _coin_failed(
        self, started: StartedBackfill, coin: str, error: str, outcome: BackfillOutcome
    ) -> None:
        target = started.range
        outcome.coin_errors[coin] = error
        self.progress.coin_failed(coin, error)
        log.warning("backfill_coin_failed", coin=coin, error=error)
        async with self.pool.acquire() as conn, conn.transaction():
            found = await queries.cursors(conn, target.source, [coin], target.since, target.until)
            await queries.move_cursor(
                conn,
                queries.CursorMove(
                    target.source,
                    coin,
                    target.since,
                    target.until,
                    found[coin].done_until if coin in found else target.since,
                    "failed",
                    started.run_id,
                    error,
                ),
            )
            await queries.add_progress(conn, started.run_id, coin_error=(coin, error))

    async def _finish(self, started: StartedBackfill, outcome: BackfillOutcome) -> None:
        if outcome.error is None:
            outcome.status, outcome.error = _status(started, outcome)
        elif outcome.coin_errors:
            outcome.error = f"{outcome.error}; {_coin_errors(outcome)}"
        error = outcome.error[:ERROR_CHARS] if outcome.error else None
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await runs.end(conn, started.run_id, outcome.status, error, read_to_end=False)
        except DATABASE_ERRORS as exc:
            # written by this process once the database is back; live until then
            log.error("backfill_end_not_recorded", error=describe(exc))
            self.live.late_ends.add(started.run_id, outcome.status, error, False)
        finally:
            self.live.ended([started.run_id])
        if outcome.chunks:
            try:
                await sync_assets(self.pool, sources=[started.range.source])
            except MAPPING_ERRORS as exc:
                log.warning("asset_mapping_failed", source=started.range.source, error=str(exc))
        log.info(
            "backfill_finished",
            run_id=started.run_id,
            status=outcome.status.value,
            inserted=outcome.counts.inserted,
            unchanged=outcome.counts.unchanged,
            chunks=outcome.chunks,
            failed_coins=len(outcome.coin_errors),
            error=outcome.error,
        )

    async def _heartbeat(self, run_id: int) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                async with self.pool.acquire() as conn:
                    if not await runs.heartbeat(conn, [run_id]):
                        return
            except DATABASE_ERRORS as exc:
                log.warning("heartbeat_failed", error=describe(exc))


async def _read(
    history: History, coin: str, chunk: Chunk, name: CoinName | None
) -> tuple[Batch, PreparedBatch]:
    """One chunk fetched (see `_rate_limit_rounds`) and transformed; the transform runs off the
    event loop (a chunk is up to ~2,200 points, and the API may share the loop)."""
    batch = await _rate_limit_rounds(functools.partial(history.fetch, coin, chunk, name))
    return batch, await asyncio.to_thread(prepare_batch, history, batch)


async def _rate_limit_rounds(request: Callable[[], Awaitable[T]]) -> T:
    """`request()`; a 429 whose Retry-After outlived the client's retries is asked again once
    the bucket's deferral (that Retry-After) has passed, up to RATE_LIMIT_ROUNDS times."""
    for round_ in range(RATE_LIMIT_ROUNDS):
        try:
            return await request()
        except RetriesExhaustedError as exc:
            if exc.last.status != 429:
                raise
            log.warning("backfill_rate_limited", round=round_ + 1, of=RATE_LIMIT_ROUNDS)
    return await request()


async def _chunk_done(move: queries.CursorMove, coin: str, conn: Connection) -> None:
    """In the chunk's transaction: the cursor moves, the run's progress counts it."""
    await queries.move_cursor(conn, move)
    await queries.add_progress(
        conn, move.run_id, chunks=1, coins=1 if move.state == "done" else 0, current=coin
    )


def _coin_errors(outcome: BackfillOutcome) -> str:
    count = len(outcome.coin_errors)
    noun = "coin" if count == 1 else "coins"
    return f"{count} {noun} failed: " + "; ".join(outcome.coin_errors.values())


def _status(started: StartedBackfill, outcome: BackfillOutcome) -> tuple[RunStatus, str | None]:
    problems: list[str] = []
    if outcome.coin_errors:
        problems.append(_coin_errors(outcome))
    if outcome.stopped_at is not None:
        left = len(started.range.coins) - len(outcome.coins_loaded) - len(outcome.coin_errors)
        problems.append(
            f"stopped after {outcome.stopped_at} failed for want of an answer: {left} coins "
            "not asked; run the same backfill again to resume"
        )
    if outcome.counts.rejected:
        problems.append(f"{outcome.counts.rejected} records were rejected")
    if not outcome.coins_loaded:
        return RunStatus.FAILED, "; ".join(problems) or "no coin was backfilled"
    if problems:
        return RunStatus.PARTIAL, "; ".join(problems)
    return RunStatus.SUCCESS, None
