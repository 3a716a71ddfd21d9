"""Reading assets: search, one asset's sources side by side, price history, mapping decisions.

The one way to this data for the API and the dashboard: every function takes a connection
(no transaction needed) and returns plain frozen dataclasses.

    total, views = await search_assets(conn, symbol="btc", stale_after_seconds=2700)
    view = await get_asset(conn, "bitcoin", stale_after_seconds=2700)  # None when unknown
    history = await asset_history(conn, "bitcoin", interval="1d", since=..., until=...)
    total, rows = await list_mappings(conn, status="unmapped")

An asset's observations are the rows of its mapped coins, read through the unique index
`(source, coin_id, observed_at)`: one index range per coin, whatever else the table holds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from cryptoetl.db.pool import Connection
from cryptoetl.models import Spread, comparable, spread_of

HOUR = timedelta(hours=1)
INTERVALS = {"1h": timedelta(hours=1), "1d": timedelta(days=1)}
MAX_BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class SourceQuote:
    """The newest observation of an asset by one source (from any of its coins there)."""

    source: str
    coin_id: str
    price_usd: float
    market_cap: float | None
    volume_24h: float | None
    observed_at: datetime
    ingested_at: datetime
    age_seconds: float
    stale: bool
    compared: bool = True  # within the spread's window of the asset's newest quote


@dataclass(frozen=True, slots=True)
class MappedCoin:
    source: str
    coin_id: str
    rule: str
    confidence: float
    method: str
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class AssetView:
    asset_id: str
    symbol: str
    name: str
    derivative: bool
    origin: str
    created_at: datetime
    sources: tuple[SourceQuote, ...]
    spread: Spread
    coins: tuple[MappedCoin, ...]


@dataclass(frozen=True, slots=True)
class Bucket:
    """One time bucket: OHLC of the prices observed in it, the last market cap and volume."""

    start: datetime
    open: float
    high: float
    low: float
    close: float
    market_cap: float | None
    volume_24h: float | None
    count: int
    sources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class History:
    buckets: list[Bucket]
    next_since: datetime | None


@dataclass(frozen=True, slots=True)
class Mapping:
    """The decision for one (source, coin_id)."""

    source: str
    coin_id: str
    asset_id: str | None
    name: str | None
    symbol: str | None
    rule: str
    confidence: float
    method: str
    reason: str
    evidence: dict[str, Any]
    decided_at: datetime
    first_seen_at: datetime


_ASSET_COLUMNS = "a.asset_id, a.symbol, a.name, a.derivative, a.origin, a.created_at"
_SEARCH_WHERE = """
    EXISTS (SELECT 1 FROM asset_mappings AS m WHERE m.asset_id = a.asset_id)
    AND ($1::text IS NULL OR lower(a.symbol) = lower($1))
    AND ($2::text IS NULL OR strpos(lower(a.name), lower($2)) > 0)
    AND ($3::text IS NULL OR lower(a.symbol) = lower($3)
         OR strpos(lower(a.name), lower($3)) > 0 OR strpos(a.asset_id, lower($3)) > 0)
"""
_QUOTES = """
SELECT DISTINCT ON (m.asset_id, m.source)
       m.asset_id, m.source, m.coin_id, l.price_usd, l.market_cap, l.volume_24h,
       l.observed_at, l.ingested_at,
       extract(epoch FROM now() - l.observed_at)::float8 AS age_seconds,
       extract(epoch FROM now() - (
           -- the source's last load (a success or partial run), the health check's freshness;
           -- two probes of etl_runs_source_status_finished
           SELECT max(r.finished_at) FROM etl_runs AS r
           WHERE r.source = m.source AND r.status IN ('success', 'partial')
       ))::float8 AS loaded_seconds_ago
FROM asset_mappings AS m
JOIN unified_pairs AS p ON p.source = m.source AND p.coin_id = m.coin_id
CROSS JOIN LATERAL (
    -- the coin's newest row: one probe of the unique key at the time unified_pairs records
    -- (runtime pruning to one partition, however many there are), or, should that partition
    -- be gone, the newest row by time
    SELECT * FROM ((
        SELECT u.price_usd, u.market_cap, u.volume_24h, u.observed_at, u.ingested_at
        FROM unified_crypto_data AS u
        WHERE u.source = m.source AND u.coin_id = m.coin_id
          AND u.observed_at = p.last_observed_at
    ) UNION ALL (
        SELECT u.price_usd, u.market_cap, u.volume_24h, u.observed_at, u.ingested_at
        FROM unified_crypto_data AS u
        WHERE u.source = m.source AND u.coin_id = m.coin_id
        ORDER BY u.observed_at DESC LIMIT 1
    )) AS n LIMIT 1
) AS l
WHERE m.asset_id = ANY($1::text[]) AND p.last_observed_at IS NOT NULL
ORDER BY m.asset_id, m.source, l.observed_at DESC, m.coin_id
"""
# An asset's buckets from pieces that each carry an OHLC, a count and the observation times
# the open, the close, the cap and the volume came from: the hourly rollups (unified_hourly,
# exact for every observation that arrived, even where thinning kept one per hour) for the
# whole hours of [since, until) ([$5, $6)), and the observations themselves for the partial
# hours at either end ([$3, $4) and [$7, $8), see `_ranges`). Combining
# pieces in the order (time, source, coin_id) gives what the observations would give: open the
# earliest, close the latest, cap and volume the latest non-null ones, high and low the
# extremes, count the sum.
#
# The picks are plain min/max over float8 arrays [epoch of the time, k, value], k being the
# coin's rank in (source, coin_id) order: arrays compare element by element, so the minimum is
# the earliest piece (ties to the first coin) and the maximum the latest (ties to the last
# coin), the order above. Within one coin no two pieces share a time (the observations are
# unique per coin and time, the rollups cover whole hours after the head piece and before the
# tail), so the value never decides. An epoch in float8 keeps microseconds apart (its spacing
# is under 0.5 us until the year 2100). An ordered aggregate (`array_agg(... ORDER BY ...)`)
# would sort every bucket on its own; these keep a year of hourly buckets at a few ms.
# Buckets are `date_bin` from the Unix epoch: the UTC hours and days, without a time-zone
# lookup per piece (as `date_trunc(..., 'UTC')` does).
_OBSERVED = """
    SELECT c.source, c.k, u.observed_at, u.price_usd, u.observed_at, u.price_usd,
           u.price_usd, u.price_usd, u.observed_at, u.market_cap,
           CASE WHEN u.market_cap IS NOT NULL THEN u.observed_at END, u.volume_24h,
           CASE WHEN u.volume_24h IS NOT NULL THEN u.observed_at END, 1
    FROM coins AS c
    JOIN unified_crypto_data AS u ON u.source = c.source AND u.coin_id = c.coin_id
     AND u.observed_at >= {start}::timestamptz AND u.observed_at < {end}::timestamptz
"""
_HISTORY = """
WITH coins AS (
    SELECT m.source, m.coin_id, row_number() OVER (ORDER BY m.source, m.coin_id)::float8 AS k
    FROM asset_mappings AS m
    WHERE m.asset_id = $1 AND ($2::text IS NULL OR m.source = $2)
), pieces (source, k, at, open, open_at, high, low, close, close_at, market_cap, cap_at,
           volume_24h, volume_at, count) AS (
    SELECT c.source, c.k, h.hour, h.open, h.open_at, h.high, h.low, h.close,
           h.close_at, h.market_cap, h.cap_at, h.volume_24h, h.volume_at, h.count
    FROM coins AS c
    JOIN unified_hourly AS h ON h.source = c.source AND h.coin_id = c.coin_id
     AND h.hour >= coalesce($5::timestamptz, '-infinity')
     AND h.hour < coalesce($6::timestamptz, 'infinity')
    UNION ALL
{head}    UNION ALL
{tail})
SELECT date_bin($9::interval, at, '1970-01-01 00:00:00+00') AS start,
       (min(ARRAY[date_part('epoch', open_at), k, open]))[3] AS open,
       max(high) AS high,
       min(low) AS low,
       (max(ARRAY[date_part('epoch', close_at), k, close]))[3] AS close,
       (max(ARRAY[date_part('epoch', cap_at), k, market_cap])
           FILTER (WHERE market_cap IS NOT NULL))[3] AS market_cap,
       (max(ARRAY[date_part('epoch', volume_at), k, volume_24h])
           FILTER (WHERE volume_24h IS NOT NULL))[3] AS volume_24h,
       sum(count)::bigint AS count,
       array_agg(DISTINCT source ORDER BY source) AS sources
FROM pieces
GROUP BY 1
ORDER BY 1
LIMIT $10
""".format(head=_OBSERVED.format(start="$3", end="$4"), tail=_OBSERVED.format(start="$7", end="$8"))
_MAPPING_COLUMNS = """
    source, coin_id, asset_id, name, symbol, rule, confidence, method, reason, evidence,
    decided_at, first_seen_at
"""


def _views(
    assets: Sequence[asyncpg.Record],
    quotes: Sequence[asyncpg.Record],
    coins: Sequence[asyncpg.Record],
    stale_after: float,
) -> list[AssetView]:
    by_asset: dict[str, list[SourceQuote]] = defaultdict(list)
    for q in quotes:
        by_asset[q["asset_id"]].append(
            SourceQuote(
                q["source"],
                q["coin_id"],
                q["price_usd"],
                q["market_cap"],
                q["volume_24h"],
                q["observed_at"],
                q["ingested_at"],
                q["age_seconds"],
                # one meaning of stale everywhere (health, status page, this): the source
                # last loaded data more than stale_after ago, or never did
                q["loaded_seconds_ago"] is None or q["loaded_seconds_ago"] > stale_after,
            )
        )
    coins_of: dict[str, list[MappedCoin]] = defaultdict(list)
    for c in coins:
        coins_of[c["asset_id"]].append(
            MappedCoin(
                c["source"], c["coin_id"], c["rule"], c["confidence"], c["method"], c["decided_at"]
            )
        )
    views = []
    for a in assets:
        quoted = by_asset[a["asset_id"]]
        near = comparable([q.observed_at for q in quoted], stale_after)
        latest = [replace(q, compared=kept) for q, kept in zip(quoted, near, strict=True)]
        views.append(
            AssetView(
                a["asset_id"],
                a["symbol"],
                a["name"],
                a["derivative"],
                a["origin"],
                a["created_at"],
                tuple(latest),
                spread_of([(q.price_usd, q.observed_at) for q in latest], stale_after),
                tuple(coins_of[a["asset_id"]]),
            )
        )
    return views


async def _with_sources(
    conn: Connection, assets: Sequence[asyncpg.Record], stale_after: float
) -> list[AssetView]:
    ids = [a["asset_id"] for a in assets]
    if not ids:
        return []
    quotes = await conn.fetch(_QUOTES, ids)
    coins = await conn.fetch(
        "SELECT asset_id, source, coin_id, rule, confidence, method, decided_at"
        " FROM asset_mappings WHERE asset_id = ANY($1::text[])"
        " ORDER BY asset_id, source, coin_id",
        ids,
    )
    return _views(assets, quotes, coins, stale_after)


async def search_assets(
    conn: Connection,
    *,
    query: str | None = None,
    symbol: str | None = None,
    name: str | None = None,
    limit: int = 20,
    offset: int = 0,
    stale_after_seconds: float,
) -> tuple[int, list[AssetView]]:
    """Assets with at least one mapped coin whose symbol is `symbol` (any case), whose name
    contains `name`, and whose symbol is, or name or id contains, `query`; the exact total
    and one page: exact symbol matches first, then the assets with more coins, then by id."""
    args = (symbol, name, query)
    total = await conn.fetchval(f"SELECT count(*) FROM assets AS a WHERE {_SEARCH_WHERE}", *args)
    rows = await conn.fetch(
        f"""
        SELECT {_ASSET_COLUMNS} FROM assets AS a
        WHERE {_SEARCH_WHERE}
        ORDER BY lower(a.symbol) = lower(coalesce($3, $1, '')) DESC,
                 (SELECT count(*) FROM asset_mappings AS m WHERE m.asset_id = a.asset_id) DESC,
                 a.asset_id
        LIMIT $4 OFFSET $5
        """,
        *args,
        limit,
        offset,
    )
    return int(total), await _with_sources(conn, rows, stale_after_seconds)


async def asset_exists(conn: Connection, asset_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM assets WHERE asset_id = $1", asset_id))


async def get_asset(
    conn: Connection, asset_id: str, *, stale_after_seconds: float
) -> AssetView | None:
    """One asset with the newest observation of each source side by side; None if unknown."""
    row = await conn.fetchrow(
        f"SELECT {_ASSET_COLUMNS} FROM assets AS a WHERE asset_id = $1", asset_id
    )
    if row is None:
        return None
    (view,) = await _with_sources(conn, [row], stale_after_seconds)
    return view


def _hour_floor(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


Range = tuple[datetime | None, datetime | None]


def _ranges(since: datetime | None, until: datetime | None) -> tuple[datetime | None, ...]:
    """[since, until) cut in three: the partial hour before the first whole hour (read from
    the observations), the whole hours (read from the rollups), the partial hour after the
    last whole hour (observations). None: open-ended, or (for a partial piece) empty."""
    first = None if since is None else _hour_floor(since)
    if first is not None and since is not None and first < since:
        first += HOUR
    last = None if until is None else _hour_floor(until)
    if first is not None and last is not None and last < first:
        last = first  # no whole hour inside: only the head piece, cut at until
    head: Range = (None, None)
    if since is not None and first is not None and first > since:
        head = (since, first if until is None else min(first, until))
    tail: Range = (None, None)
    if until is not None and last is not None and last < until:
        tail = (last, until)
    return (*head, first, last, *tail)


def history_statement(
    asset_id: str,
    *,
    interval: str = "1h",
    since: datetime | None = None,
    until: datetime | None = None,
    source: str | None = None,
    limit: int = MAX_BUCKETS,
) -> tuple[str, list[Any]]:
    """The statement `asset_history` runs, and its arguments (one more bucket than `limit`,
    to tell whether there is a next page)."""
    args = [asset_id, source, *_ranges(since, until), INTERVALS[interval], limit + 1]
    return _HISTORY, args


async def asset_history(
    conn: Connection,
    asset_id: str,
    *,
    interval: str = "1h",
    since: datetime | None = None,
    until: datetime | None = None,
    source: str | None = None,
    limit: int = MAX_BUCKETS,
) -> History:
    """Buckets of `interval` (`1h`, `1d`; aligned to UTC) from the observations in
    [since, until) of the asset's mapped coins (of `source` only, or of every source: then all
    their observations count together). The first `limit` buckets, oldest first; buckets with
    no observation are left out. `next_since` is where the next page starts, or None."""
    statement, args = history_statement(
        asset_id, interval=interval, since=since, until=until, source=source, limit=limit
    )
    rows = await conn.fetch(statement, *args)
    buckets = [
        Bucket(start, open_, high, low, close, cap, volume, count, tuple(sources))
        for start, open_, high, low, close, cap, volume, count, sources in rows[:limit]
    ]
    next_since = rows[limit]["start"] if len(rows) > limit else None
    return History(buckets, next_since)


async def history_days(conn: Connection, asset_id: str) -> timedelta | None:
    """The time from the UTC day of the asset's first observation (any mapped source) to the
    UTC day of its last, as the daily buckets of `asset_history` would span; None without
    any observation. Two index lookups per mapped coin, in the hourly rollups (an
    observation's day is its hour's)."""
    span: timedelta | None = await conn.fetchval(
        """
        SELECT date_trunc('day', max(span.last), 'UTC') - date_trunc('day', min(span.first), 'UTC')
        FROM asset_mappings AS m
        CROSS JOIN LATERAL (
            SELECT min(u.hour) AS first, max(u.hour) AS last
            FROM unified_hourly AS u
            WHERE u.source = m.source AND u.coin_id = m.coin_id
        ) AS span
        WHERE m.asset_id = $1
        """,
        asset_id,
    )
    return span


def _mapping(row: asyncpg.Record) -> Mapping:
    return Mapping(**dict(row))


async def get_mapping(conn: Connection, source: str, coin_id: str) -> Mapping | None:
    row = await conn.fetchrow(
        f"SELECT {_MAPPING_COLUMNS} FROM asset_mappings WHERE source = $1 AND coin_id = $2",
        source,
        coin_id,
    )
    return _mapping(row) if row is not None else None


async def list_mappings(
    conn: Connection,
    *,
    source: str | None = None,
    status: str | None = None,
    asset_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[Mapping]]:
    """Mapping decisions (`status` `mapped` or `unmapped`), by source and coin id; the exact
    total and one page."""
    where = """
        ($1::text IS NULL OR source = $1)
        AND ($2::text IS NULL OR (asset_id IS NULL) = ($2 = 'unmapped'))
        AND ($3::text IS NULL OR asset_id = $3)
    """
    args = (source, status, asset_id)
    total = await conn.fetchval(f"SELECT count(*) FROM asset_mappings WHERE {where}", *args)
    rows = await conn.fetch(
        f"SELECT {_MAPPING_COLUMNS} FROM asset_mappings WHERE {where}"
        " ORDER BY source, coin_id LIMIT $4 OFFSET $5",
        *args,
        limit,
        offset,
    )
    return int(total), [_mapping(row) for row in rows]
