"""What is worth a retry, and how long to wait before it (pure functions, no I/O).

- Transient: 429, 408, every 5xx, timeouts, connection errors. Everything else is final.
- Wait: `Retry-After` when the upstream sent one (seconds or an HTTP date), else exponential
  backoff from INITIAL_RETRY_DELAY, doubling per retry, capped at MAX_RETRY_DELAY, with jitter
  ("equal jitter": a uniform draw from the upper half of the step, so a retry never comes
  early in a burst and never exceeds the cap).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus

TRANSIENT_STATUSES = frozenset({408, 429})


def is_transient_status(status: int) -> bool:
    """429 (rate limited), 408 (request timeout) and any 5xx are worth retrying."""
    return status in TRANSIENT_STATUSES or 500 <= status <= 599


def backoff_delay(
    retry: int,
    initial: float,
    maximum: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number `retry` (1 for the first retry).

    The step is `initial * 2 ** (retry - 1)` capped at `maximum`; the result is drawn
    uniformly from `[step / 2, step]`.
    """
    if retry < 1:
        raise ValueError("retry counts from 1")
    step = min(maximum, initial * 2.0 ** min(retry - 1, 60))
    draw = (rng or random).random()
    return step / 2 + draw * step / 2


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds the upstream asks us to wait: `Retry-After: 120` or an HTTP date.

    Returns None when the header is absent or unreadable, 0 for a date in the past.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if seconds != seconds or seconds in (float("inf"), float("-inf")):
            return None
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT by definition
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def status_text(status: int) -> str:
    """`429 Too Many Requests` for a known status, the number alone otherwise."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)
