"""GET /: every source's state at a glance, the recent runs as a timeline, the totals.

Read through the JSON API's own query functions: the per-source numbers are those of
`/api/v1/stats` (`SourceStats.from_overview` over `source_status.stats_overview`), the verdicts
those of `/api/v1/health` (`freshness.source_problem`), the runs those of `/api/v1/runs`, the
rejected count that of `/api/v1/rejected`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.responses import HTMLResponse

from cryptoetl.api.deps import PoolDep, SettingsDep
from cryptoetl.api.freshness import Problem, source_problem, stale_after_seconds
from cryptoetl.api.schemas.runs import SourceStats, duration
from cryptoetl.config import Settings
from cryptoetl.db import backfill as backfill_queries
from cryptoetl.db import rejected as rejected_queries
from cryptoetl.db import runs as run_queries
from cryptoetl.db import source_status
from cryptoetl.sources import REGISTRY
from cryptoetl.web import format as fmt
from cryptoetl.web.render import Pages
from cryptoetl.web.routing import DATABASE_WAIT, PageRoute
from cryptoetl.web.timeline import RunMark, run_timeline

router = APIRouter(route_class=PageRoute, include_in_schema=False)

RUNS_IN_TIMELINE = 60
RUNS_IN_TABLE = 12
BACKFILLS_SHOWN = 5

# verdict -> (what the badge says, its colour class)
VERDICTS = {
    "ok": ("OK", "good"),
    "running": ("FIRST RUN", "info"),
    "waiting": ("WAITING", "idle"),
    "failed": ("FAILED", "bad"),
    "partial": ("PARTIAL", "warn"),
    "stale": ("STALE", "warn"),
    "no_data": ("NO DATA", "bad"),
    "disabled": ("DISABLED", "idle"),
}


@dataclass(frozen=True, slots=True)
class SourceCard:
    """One source as the page shows it: the stats, a verdict, and what is wrong in words."""

    stats: SourceStats
    verdict: str
    problem: str | None  # short: "last run failed 3 min ago"
    error: str | None  # the failed or partial run's error, when that is the problem
    last_loaded_at: datetime | None

    @property
    def badge(self) -> str:
        return VERDICTS[self.verdict][0]

    @property
    def tone(self) -> str:
        return VERDICTS[self.verdict][1]


def _verdict(enabled: bool, problem: Problem | None, row: asyncpg.Record) -> str:
    if not enabled:
        return "disabled"
    if problem is not None:
        return problem.kind
    if row["last_loaded_at"] is None:
        return "running" if row["status"] == "running" else "waiting"
    return "ok"


def _problem(verdict: str, row: asyncpg.Record, stale_after: int, now: datetime) -> str | None:
    if verdict in ("failed", "partial"):
        return f"last run {verdict} {fmt.ago(row['done_at'], now)}"
    if verdict == "stale":
        loaded = fmt.ago(row["last_loaded_at"], now)
        return f"data is stale: last loaded {loaded}, more than {fmt.every(stale_after)} ago"
    if verdict == "no_data":
        return "no data loaded yet, long after the service started"
    return None


def source_cards(
    overview: Sequence[asyncpg.Record], settings: Settings, *, now: datetime, started: datetime
) -> list[SourceCard]:
    """A card per source of `stats_overview`, judged by the health check's rules (a source
    has a problem exactly when `/api/v1/health` names it)."""
    stale_after = stale_after_seconds(settings.etl_interval_seconds)
    cards = []
    for row in overview:
        enabled = row["source"] in settings.enabled_sources
        problem = source_problem(
            row, interval_seconds=settings.etl_interval_seconds, now=now, started_at=started
        )
        verdict = _verdict(enabled, problem, row)
        error = row["done_error"] if verdict in ("failed", "partial") else None
        cards.append(
            SourceCard(
                SourceStats.from_overview(row, enabled=enabled, now=now),
                verdict,
                _problem(verdict, row, stale_after, now),
                error,
                row["last_loaded_at"],
            )
        )
    return cards


def _tooltip(run: asyncpg.Record, seconds: float | None) -> str:
    text = (
        f"run #{run['id']} · {run['source']} · {run['status']} · {run['trigger']} · "
        f"started {fmt.utc(run['started_at'], seconds=True)} · {fmt.span(seconds)} · "
        f"fetched {run['fetched']:,}, inserted {run['inserted']:,}, updated {run['updated']:,}, "
        f"unchanged {run['unchanged']:,}, rejected {run['rejected']:,}"
    )
    return f"{text} · {run['error']}" if run["error"] else text


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, pool: PoolDep, settings: SettingsDep) -> HTMLResponse:
    async with pool.acquire(timeout=DATABASE_WAIT) as conn:
        overview = await source_status.stats_overview(conn, REGISTRY.names)
        runs_total, runs = await run_queries.list_page(
            conn, source=None, status=None, limit=RUNS_IN_TIMELINE, offset=0
        )
        rejected_total, rejected_by_source = await rejected_queries.count_rejected_by_source(
            conn, [row["source"] for row in overview]
        )
        backfills = await backfill_queries.recent(conn, BACKFILLS_SHOWN)
    now = datetime.now(UTC)
    cards = source_cards(overview, settings, now=now, started=request.app.state.started_at)
    problems = [card for card in cards if card.problem]
    durations = {run["id"]: duration(run["started_at"], run["finished_at"], now) for run in runs}
    marks = [
        RunMark(
            run["id"],
            run["source"],
            run["status"],
            run["started_at"],
            durations[run["id"]],
            _tooltip(run, durations[run["id"]]),
        )
        for run in runs
    ]
    enabled = [card for card in cards if card.stats.enabled]
    context = {
        "title": "Status",
        "now": now,
        "cards": cards,
        "problems": problems,
        "healthy": not problems,
        "enabled_ok": sum(card.verdict == "ok" for card in enabled),
        "enabled_count": len(enabled),
        "total_records": sum(card.stats.total_records for card in cards),
        "runs_total": runs_total,
        "rejected_total": rejected_total,
        "rejected_cap": rejected_queries.COUNT_CAP,
        "rejected_by_source": rejected_by_source,
        "recent_runs": runs[:RUNS_IN_TABLE],
        "backfills": backfills,
        "durations": durations,
        "longest_run": max((d for d in durations.values() if d is not None), default=None),
        # already escaped by the pure renderer
        "timeline": Markup(run_timeline(marks, [c.stats.source for c in cards])),  # noqa: S704
        "interval": settings.etl_interval_seconds,
        "stale_after": stale_after_seconds(settings.etl_interval_seconds),
    }
    pages: Pages = request.app.state.pages
    return pages.render(request, "dashboard.html", context)
