"""The bodies of the `cryptoetl` commands (`main` parses the command line and calls them).

Each returns the process's exit status; heavy imports happen inside, so `cryptoetl --help` and
a configuration error answer at once.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import structlog

from cryptoetl.config import Settings
from cryptoetl.errors import RunInProgressError

if TYPE_CHECKING:
    from cryptoetl.db.history_export import DaySlice
    from cryptoetl.etl.export.files import Format

log = structlog.get_logger("cryptoetl")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_PORT_IN_USE = 3
# Closing the terminal (SIGHUP to the process group) stops the service like Ctrl-C or SIGTERM,
# so the embedded PostgreSQL is stopped too.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class PortInUseError(OSError):
    """The address `serve` should listen on is taken; the message is the one line to print."""


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` for uvicorn, before anything else starts (so a busy port
    is one line and exit status 3, not a traceback after the database came up)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise PortInUseError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} "
            "(another server there? set API_PORT or pass --port)"
        ) from None
    sock.set_inheritable(True)
    return sock


async def serve(settings: Settings, host: str, port: int) -> int:
    import uvicorn

    from cryptoetl.api.protocol import JsonErrorProtocol
    from cryptoetl.app import create_app
    from cryptoetl.db.server import prepare_database
    from cryptoetl.etl.service import open_etl

    stop_requested: list[int] = []
    server: uvicorn.Server | None = None

    def request_stop(signum: int, frame: FrameType | None) -> None:
        # Installed before uvicorn's own handlers and restored after them: a signal during
        # start-up, or the one uvicorn re-raises on its way out, lands here instead of killing
        # the process before the embedded database is stopped.
        stop_requested.append(signum)
        if server is not None:
            server.should_exit = True

    for signum in STOP_SIGNALS:
        signal.signal(signum, request_stop)

    try:
        sock = listen(host, port)
    except (PortInUseError, socket.gaierror) as exc:
        print(f"cryptoetl: {exc}", file=sys.stderr)
        return EXIT_PORT_IN_USE
    async with prepare_database(settings, supervise=True) as url:
        if stop_requested:
            sock.close()
            return EXIT_OK
        config = uvicorn.Config(
            create_app(settings, database_url=url, etl=open_etl),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="on",
            http=JsonErrorProtocol,
            timeout_graceful_shutdown=10,
        )
        server = uvicorn.Server(config)
        log.info("serving", url=f"http://{host}:{port}", docs=f"http://{host}:{port}/docs")
        await server.serve(sockets=[sock])
        if server.started is False and not stop_requested:
            return EXIT_FAILURE  # uvicorn could not bind or start; it logged why
    return EXIT_OK


async def migrate(settings: Settings) -> int:
    from cryptoetl.db.server import prepare_database

    async with prepare_database(settings):
        pass
    print("migrations are up to date", file=sys.stderr)
    return EXIT_OK


async def etl_run(settings: Settings, sources: Sequence[str] | None) -> int:
    """One run in the foreground: progress on stderr, the summary table on stdout."""
    from cryptoetl.cli.progress import TerminalProgress, format_summary
    from cryptoetl.db.pool import open_pool
    from cryptoetl.db.server import prepare_database
    from cryptoetl.etl.pipeline import Pipeline
    from cryptoetl.models import RunStatus, RunTrigger

    task = asyncio.current_task()
    if task is not None:  # SIGTERM/SIGHUP stop the run like Ctrl-C: runs recorded, db stopped
        for signum in (signal.SIGTERM, signal.SIGHUP):
            asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    progress = TerminalProgress(sys.stderr)
    try:
        async with prepare_database(settings) as url, open_pool(url, max_size=8) as pool:
            pipeline = Pipeline(settings, pool, progress=progress)
            try:
                outcomes = await pipeline.run(sources, RunTrigger.CLI)
            except RunInProgressError as exc:
                progress.close()
                print(f"cryptoetl: {exc}", file=sys.stderr)
                return EXIT_FAILURE
            progress.close()  # the display ends before the database's last log lines
    except asyncio.CancelledError:
        progress.close()
        print("cryptoetl: stopped; the runs in progress were recorded as failed", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        progress.close()
    print(format_summary(outcomes), flush=True)
    if all(outcome.status is RunStatus.SUCCESS for outcome in outcomes):
        return EXIT_OK
    return EXIT_FAILURE


async def backfill(settings: Settings, args: argparse.Namespace) -> int:
    """A backfill in the foreground: a line per chunk on stderr, the outcome on stdout."""
    from cryptoetl.cli.progress import BackfillLines, format_backfill
    from cryptoetl.db.pool import open_pool
    from cryptoetl.db.server import prepare_database
    from cryptoetl.errors import BackfillRequestError
    from cryptoetl.etl.backfill import Backfill
    from cryptoetl.etl.backfill_request import check, parse_time
    from cryptoetl.models import BackfillRequest, RunStatus

    try:
        request = BackfillRequest(
            source=args.source,
            coins=args.coin,
            top=args.top,
            days=args.days,
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
        )
        check(request, datetime.now(UTC))  # before the database starts; begin checks again
    except BackfillRequestError as exc:
        print(f"cryptoetl: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    task = asyncio.current_task()
    if task is not None:  # SIGTERM stops the backfill like Ctrl-C: recorded, resumable
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    lines = BackfillLines(sys.stderr)
    try:
        async with prepare_database(settings) as url, open_pool(url, max_size=4) as pool:
            runner = Backfill(settings, pool, progress=lines)
            try:
                started = await runner.begin(request)
            except BackfillRequestError as exc:
                print(f"cryptoetl: {exc}", file=sys.stderr)
                return EXIT_CONFIG
            except RunInProgressError as exc:
                print(f"cryptoetl: a backfill {exc}", file=sys.stderr)
                return EXIT_FAILURE
            lines.started(started)
            outcome = await runner.execute(started)
    except asyncio.CancelledError:
        print(
            "cryptoetl: stopped; the backfill was recorded and resumes when run again",
            file=sys.stderr,
        )
        return 128 + signal.SIGTERM
    print(format_backfill(outcome), flush=True)
    return EXIT_OK if outcome.status is RunStatus.SUCCESS else EXIT_FAILURE


async def maintain(settings: Settings) -> int:
    """One maintenance run in the foreground: each step's line on stdout."""
    from cryptoetl.db.pool import open_pool
    from cryptoetl.db.server import prepare_database
    from cryptoetl.etl.maintain import run_maintenance
    from cryptoetl.etl.owner import this_process
    from cryptoetl.models import RunStatus, RunTrigger

    async with prepare_database(settings) as url, open_pool(url, max_size=4) as pool:
        try:
            outcome = await run_maintenance(pool, settings, RunTrigger.CLI, str(this_process()))
        except RunInProgressError as exc:
            print(f"cryptoetl: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    for step in outcome.steps:
        print(f"{step.name}: {step.summary}")
    for error in outcome.errors:
        print(f"cryptoetl: maintenance step failed: {error}", file=sys.stderr)
    print(f"maintenance run {outcome.run_id}: {outcome.status.value}", flush=True)
    return EXIT_OK if outcome.status is RunStatus.SUCCESS else EXIT_FAILURE


async def assets_rebuild(settings: Settings) -> int:
    """Decide every coin's asset again, from each coin's newest name and symbol."""
    from cryptoetl.assets.sync import sync_assets
    from cryptoetl.db.pool import open_pool
    from cryptoetl.db.server import prepare_database

    async with prepare_database(settings) as url, open_pool(url, max_size=2) as pool:
        report = await sync_assets(pool, refresh=True, force=True)
    coins = report.mapped + report.unmapped
    print(
        f"coins: {coins:,} ({report.new_coins:,} new)  mapped: {report.mapped:,}  "
        f"unmapped: {report.unmapped:,}  changed: {report.changed:,}  "
        f"assets created: {report.assets_created:,}"
    )
    if report.unmapped_by_rule:
        reasons = ", ".join(f"{rule} {n:,}" for rule, n in report.unmapped_by_rule.items())
        print(f"unmapped by rule: {reasons}")
        print("the list, with reasons: GET /api/v1/asset-mappings?status=unmapped")
    return EXIT_OK


async def export(
    settings: Settings,
    out: Path,
    since: date | None,
    until: date | None,
    sources: Sequence[str] | None,
    *,
    force: bool,
    fmt: Format = "parquet",
    table: str = "observations",
) -> int:
    """The history as Parquet (or CSV) under `out`; one line per day written on stderr, a
    total.

    Migrations are applied on the primary like every command; the rows are read from
    `DATABASE_READ_URL` when it is set (an export is a long read: keep it off the primary),
    from the primary when it is not, or when the standby does not answer."""
    from cryptoetl.db.pool import connect
    from cryptoetl.db.server import prepare_database
    from cryptoetl.errors import DatabaseUnavailableError
    from cryptoetl.etl.export.history import export_history

    def on_day(part: DaySlice, written: bool) -> None:
        if written:
            print(f"  {part.source} {part.day}: {part.rows:,} rows", file=sys.stderr)

    async with prepare_database(settings) as url:
        conn = None
        if settings.database_read_url is not None:
            try:
                conn = await connect(settings.database_read_url.get_secret_value())
            except DatabaseUnavailableError as exc:
                print(f"cryptoetl: reading from the primary: {exc}", file=sys.stderr)
        if conn is None:
            conn = await connect(url)
        try:
            report = await export_history(
                conn,
                out,
                since=since,
                until=until,
                sources=sources,
                force=force,
                fmt=fmt,
                table=table,
                on_day=on_day,
            )
        except OSError as exc:  # the directory: not writable, a file, the disk full
            print(
                f"cryptoetl: cannot write the export to {out}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        finally:
            await conn.close()
    print(
        f"exported {report.rows_written:,} rows in {len(report.written):,} day files to {out}; "
        f"{len(report.skipped):,} days unchanged ({report.rows_total:,} rows in range)"
    )
    return EXIT_OK
