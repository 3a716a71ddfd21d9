"""The `cryptoetl` command line: serve, migrate, maintain, etl run, backfill, assets rebuild,
export (bodies in `commands`).

Every command reads the settings once, sets up logging, and turns the errors a user can fix
(a bad setting, an unreachable database, an edited migration) into one line on stderr and a
non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptoetl import __version__
from cryptoetl.cli import commands
from cryptoetl.cli.commands import EXIT_CONFIG, EXIT_FAILURE
from cryptoetl.errors import ConfigError, CryptoEtlError
from cryptoetl.log import configure_logging
from cryptoetl.sources import REGISTRY, load_settings

HISTORY_SOURCES = ("coingecko", "coinpaprika")


def _run(coro: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed, else the standard loop."""
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        factory = None
    # what start-up made (modules, classes, settings) lives as long as the process: frozen, a
    # full garbage collection does not walk it again, which would hold the event loop (and
    # the API on it) for tens of milliseconds each time
    gc.collect()
    gc.freeze()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryptoetl",
        description=(
            "Keep a PostgreSQL history of cryptocurrency market data fresh and serve it over "
            "REST. Settings come from the environment and .env (see docs/operations.md)."
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

    commands.add_parser(
        "maintain",
        help="create partitions ahead, retire old raw records, report table sizes; exit",
        description=(
            "One maintenance run (the scheduler's leader runs one a day): partitions for the "
            "coming weeks, raw partitions older than RAW_RETENTION_DAYS dropped whole, and the "
            "size of every table with the bytes per observation. Recorded in /api/v1/runs as "
            "source 'maintenance'. Exit status 0 when every step succeeded."
        ),
    )

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
        choices=REGISTRY.names,
        metavar="SOURCE",
        help=f"a source to run (repeatable; one of {', '.join(REGISTRY.names)}); "
        "default: ENABLED_SOURCES",
    )

    backfill = commands.add_parser(
        "backfill",
        help="load a range of history from a source's history endpoint (resumable)",
        description=(
            "Fetch the history of coins from a provider's history endpoint (CoinGecko hourly, "
            "CoinPaprika daily candles) into the same history as the live runs, coin by coin. "
            "Re-running stores nothing twice; a killed backfill resumes where it stopped when "
            "run again with the same options. Exit status 0 when every coin was loaded, 1 when "
            "any coin failed (each is named with the provider's answer), 2 for a bad request."
        ),
    )
    backfill.add_argument(
        "--source",
        required=True,
        choices=HISTORY_SOURCES,
        metavar="SOURCE",
        help=f"one of {', '.join(HISTORY_SOURCES)}",
    )
    backfill.add_argument(
        "--coin",
        action="append",
        default=[],
        metavar="ID",
        help="the source's coin id (repeatable), e.g. bitcoin or btc-bitcoin",
    )
    backfill.add_argument(
        "--top",
        type=int,
        metavar="N",
        help="the first N coins by market cap in the source's latest snapshot",
    )
    span = backfill.add_mutually_exclusive_group(required=True)
    span.add_argument("--days", type=int, metavar="D", help="the last D days")
    span.add_argument("--since", metavar="T", help="from T (2025-01-31 or 2025-01-31T12:00Z)")
    backfill.add_argument("--until", metavar="T", help="to T (with --since; default: now)")

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
    export = commands.add_parser(
        "export",
        help="write the history as Hive-partitioned Parquet (source=S/date=YYYY-MM-DD/)",
        description=(
            "Write every observation (or those of --source, days --since..--until inclusive, "
            "UTC) under --out as source=S/date=YYYY-MM-DD/part-0.parquet, one file per source "
            "and day, each replaced atomically. A day whose file already holds the same rows "
            "is left alone, so a repeated or interrupted export only writes what changed."
        ),
    )
    export.add_argument("--out", required=True, type=Path, metavar="DIR", help="where to write")
    export.add_argument(
        "--since", type=export_day, metavar="T", help="first day (YYYY-MM-DD or ISO time, UTC)"
    )
    export.add_argument(
        "--until", type=export_day, metavar="T", help="last day, included (YYYY-MM-DD or ISO time)"
    )
    export.add_argument(
        "--source",
        action="append",
        choices=REGISTRY.names,
        metavar="SOURCE",
        help=f"a source to export (repeatable; one of {', '.join(REGISTRY.names)}); default: all",
    )
    export.add_argument("--force", action="store_true", help="rewrite every day, changed or not")
    export.add_argument(
        "--table",
        choices=("observations", "hourly"),
        default="observations",
        help="what to export: every observation (default) or the hourly OHLC rollups; "
        "give each its own --out directory",
    )
    export.add_argument(
        "--format",
        choices=("parquet", "csv"),
        default="parquet",
        help="file format (default: parquet; csv: part-0.csv with a header, same layout)",
    )
    return parser


def export_day(text: str) -> date:
    """`YYYY-MM-DD`, or an ISO 8601 time whose UTC day it names (naive times are UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date()


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
            return _run(commands.serve(settings, args.host or settings.api_host, settings.api_port))
        if args.command == "migrate":
            return _run(commands.migrate(settings))
        if args.command == "maintain":
            return _run(commands.maintain(settings))
        if args.command == "etl":
            return _run(commands.etl_run(settings, args.source))
        if args.command == "backfill":
            return _run(commands.backfill(settings, args))
        if args.command == "assets":
            return _run(commands.assets_rebuild(settings))
        if args.command == "export":
            if args.since and args.until and args.since > args.until:
                print("cryptoetl: --since is after --until", file=sys.stderr)
                return EXIT_CONFIG
            return _run(
                commands.export(
                    settings,
                    args.out,
                    args.since,
                    args.until,
                    args.source,
                    force=args.force,
                    fmt=args.format,
                    table=args.table,
                )
            )
    except CryptoEtlError as exc:
        print(f"cryptoetl: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    return EXIT_FAILURE  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
