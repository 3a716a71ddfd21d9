"""What a backfill is asked: a source, coins (`--coin`, `--top N`), a range (`--days` or
`--since` [`--until`]); checked before anything starts, with a message that says what to fix.

The range ends at `--until`, else at the source's resolution grid before now (the start of the
current hour for CoinGecko, 00:00 UTC today for CoinPaprika), so the same command run twice in
that hour (day) asks the same range: the cursors of the first run are found again and a killed
backfill resumes where it stopped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptoetl.errors import BackfillRequestError
from cryptoetl.models import BackfillRequest
from cryptoetl.sources.history_registry import HISTORY

MAX_COINS = 1000
MAX_DAYS = 36500
COIN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True, slots=True)
class BackfillRange:
    """A checked request: its source, the named coins, how many top coins, the range."""

    source: str
    coins: list[str]
    top: int | None
    since: datetime
    until: datetime
    names: dict[str, tuple[str, str]] = field(default_factory=dict)


def parse_time(text: str) -> datetime:
    """`2025-01-31`, `2025-01-31T12:00`, `2025-01-31T12:00:00+02:00`; without a zone, UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BackfillRequestError(
            f"{text!r} is not a date or time (use 2025-01-31 or 2025-01-31T12:00Z)"
        ) from None
    return _utc(value)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check(request: BackfillRequest, now: datetime) -> BackfillRange:
    """The request made concrete, or `BackfillRequestError` saying what is wrong."""
    kind = HISTORY.get(request.source)
    if kind is None:
        raise BackfillRequestError(
            f"source {request.source!r} has no history endpoint; one of {', '.join(HISTORY)}"
        )
    coins = list(dict.fromkeys(coin.strip() for coin in request.coins))
    bad = [coin for coin in coins if not COIN_ID.match(coin)]
    if bad:
        raise BackfillRequestError(f"not a coin id: {bad[0]!r} (letters, digits, '.', '_', '-')")
    if request.top is not None and not 1 <= request.top <= MAX_COINS:
        raise BackfillRequestError(f"top must be between 1 and {MAX_COINS}")
    if not coins and request.top is None:
        raise BackfillRequestError("name the coins (--coin ID, repeatable) or --top N")
    if len(coins) + (request.top or 0) > MAX_COINS:
        raise BackfillRequestError(f"at most {MAX_COINS} coins per backfill")
    if request.days is not None and (request.since is not None or request.until is not None):
        raise BackfillRequestError("give either days or since [until], not both")
    if request.until is not None and request.since is None:
        raise BackfillRequestError("until needs since")
    if request.days is None and request.since is None:
        raise BackfillRequestError("give the range: days D, or since T [until T]")
    if request.days is not None and not 1 <= request.days <= MAX_DAYS:
        raise BackfillRequestError(f"days must be between 1 and {MAX_DAYS}")
    until = _utc(request.until) if request.until is not None else kind.align(now)
    until = min(until, now.astimezone(UTC))
    if request.since is not None:
        since = _utc(request.since)
    else:
        since = until - timedelta(days=request.days or 0)
    if since >= until:
        raise BackfillRequestError(
            f"the range is empty: since {since.isoformat()} is not before until "
            f"{until.isoformat()} (until is never later than now)"
        )
    return BackfillRange(request.source, coins, request.top, since, until)
