"""What a backfill is asked and what it started (standard library only): the CLI, the admin API
and the ETL share these."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class BackfillRequest:
    """A backfill as asked: a source, coins (named, and/or the `top` N of the latest snapshot),
    and a range (`days` back from now, or `since` [`until`])."""

    source: str
    coins: Sequence[str] = ()
    top: int | None = None
    days: int | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class BackfillStarted:
    """A backfill whose run row exists and that goes on in the background."""

    run_id: int
    source: str
    started_at: datetime
    coins: Sequence[str]
    since: datetime
    until: datetime
    requests: int
