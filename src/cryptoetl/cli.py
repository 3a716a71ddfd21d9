"""The `cryptoetl` command: serve, migrate, etl run, assets rebuild.

Every command reads the settings once, sets up logging, and turns the errors a user can fix
(a bad setting, an unreachable database, an edited migration) into one line on stderr and a
non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from types import FrameType
from typing import Any

import structlog

from cryptoetl import __version__
from cryptoetl.config import KNOWN_SOURCES, Settings, load_settings
from cryptoetl.errors import ConfigError, CryptoEtlError, RunInProgressError
from cryptoetl.log import configure_logging

log = structlog.get_logger("cryptoetl")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def _run(coro: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed, else the standard loop."""
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


async def _serve(settings: Settings, host: str, port: int) -> int:
    import uvicorn

    from cryptoetl.api.app import create_app
    from cryptoetl.db.pool import prepare_database
    from cryptoetl.scheduler import open_etl

    stop_requested: list[int] = []
    server: uvicorn.Server | None = None

    def request_stop(signum: int, frame: FrameType | None) -> None:
        # Installed before uvicorn's own handlers and restored after them: a signal during
        # start-up, or the one uvicorn re-raises on its way out, lands here instead of killing
        # the process before the embedded database is stopped.
        stop_requested.append(signum)
        if server is not None:
            server.should_exit = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)

    async with prepare_database(settings) as url:
        if stop_requested:
            return EXIT_OK
        config = uvicorn.Config(
            create_app(settings, database_url=url, etl=open_etl),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
        server = uvicorn.Server(config)
        log.info("serving", url=f"http://{host}:{port}", docs=f"http://{host}:{port}/docs")
        await server.serve()
        if server.started is False and not stop_requested:
            return EXIT_FAILURE  # uvicorn could not bind or start; it logged why
    return EXIT_OK


async def _migrate(settings: Settings) -> int:
    from cryptoetl.db.pool import prepare_database

    async with prepare_database(settings):
        pass
    print("migrations are up to date", file=sys.stderr)
    return EXIT_OK


async def _etl_run(settings: Settings, sources: Sequence[str] | None) -> int:
    """One run in the foreground: progress on stderr, the summary table on stdout."""
    from cryptoetl.db.pool import open_pool, prepare_database
    from cryptoetl.models import RunStatus, RunTrigger
    from cryptoetl.pipeline import Pipeline
    from cryptoetl.progress import TerminalProgress, format_summary

    task = asyncio.current_task()
    if task is not None:  # SIGTERM stops the run like Ctrl-C: runs recorded, database stopped
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    progress = TerminalProgress(sys.stderr)
    try:
        async with prepare_database(settings) as url, open_pool(url, max_size=8) as pool:
            pipeline = Pipeline(settings, pool, progress=progress)
            try:
                outcomes = await pipeline.run(sources, RunTrigger.CLI)
            except RunInProgressError as exc:
                print(f"cryptoetl: {exc}", file=sys.stderr)
                return EXIT_FAILURE
    except asyncio.CancelledError:
        progress.close()
        print("cryptoetl: stopped; the runs in progress were recorded as failed", file=sys.stderr)
        return 128 + signal.SIGTERM
    progress.close()
    print(format_summary(outcomes), flush=True)
    if all(outcome.status is RunStatus.SUCCESS for outcome in outcomes):
        return EXIT_OK
    return EXIT_FAILURE


async def _assets_rebuild(settings: Settings) -> int:
    """Decide every coin's asset again, from each coin's newest name and symbol."""
    from cryptoetl.assets.sync import sync_assets
    from cryptoetl.db.pool import open_pool, prepare_database

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryptoetl",
        description=(
            "Keep a PostgreSQL history of cryptocurrency market data fresh and serve it over "
            "REST. Settings come from the environment and .env (see README)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"cryptoetl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="migrate, start the scheduler and serve the API (the service)"
    )
    serve.add_argument("--host", help="address to listen on (default: API_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: API_PORT)")

    commands.add_parser("migrate", help="apply pending database migrations and exit")

    etl = commands.add_parser("etl", help="run the ETL by hand")
    etl_commands = etl.add_subparsers(dest="etl_command", required=True, metavar="COMMAND")
    run = etl_commands.add_parser(
        "run",
        help="one run in the foreground; exit 0 only when every source succeeded",
        description=(
            "Fetch, transform and load every enabled source (or the --source ones) once, "
            "with progress on stderr and a summary table on stdout. Exit status 0 when every "
            "source succeeded, 1 when any ended partial or failed."
        ),
    )
    run.add_argument(
        "--source",
        action="append",
        choices=KNOWN_SOURCES,
        metavar="SOURCE",
        help=f"a source to run (repeatable; one of {', '.join(KNOWN_SOURCES)}); "
        "default: ENABLED_SOURCES",
    )

    assets = commands.add_parser("assets", help="the canonical assets across sources")
    asset_commands = assets.add_subparsers(dest="assets_command", required=True, metavar="COMMAND")
    asset_commands.add_parser(
        "rebuild",
        help="decide every coin's asset again (pins stay); prints what changed",
        description=(
            "Read every coin's name and symbol again from its newest observation, apply the "
            "shipped overrides, and re-derive every automatic mapping; pins stay. Idempotent."
        ),
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides = {"api_port": args.port} if getattr(args, "port", None) is not None else {}
        settings = load_settings(**overrides)
    except ConfigError as exc:
        print(f"cryptoetl: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_level, settings.log_format, settings.secrets())
    try:
        if args.command == "serve":
            return _run(_serve(settings, args.host or settings.api_host, settings.api_port))
        if args.command == "migrate":
            return _run(_migrate(settings))
        if args.command == "etl":
            return _run(_etl_run(settings, args.source))
        if args.command == "assets":
            return _run(_assets_rebuild(settings))
    except CryptoEtlError as exc:
        print(f"cryptoetl: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    return EXIT_FAILURE  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
