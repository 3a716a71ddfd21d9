"""Durations the API reports: `api_latency_ms` (since the middleware saw the request) and
run durations."""

from __future__ import annotations

import time
from datetime import datetime

from starlette.requests import Request


def latency_ms(request: Request) -> float:
    started = getattr(request.state, "started", None)
    if started is None:
        return 0.0
    return round((time.perf_counter() - float(started)) * 1000, 2)


def duration(started: datetime | None, finished: datetime | None, now: datetime) -> float | None:
    """Seconds from start to finish (to now while running); None before any run."""
    if started is None:
        return None
    return round(((finished or now) - started).total_seconds(), 3)
