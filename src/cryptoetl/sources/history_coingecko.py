"""CoinGecko's history: `/coins/{id}/market_chart/range?vs_currency=usd&from=&to=`.

The answer is three arrays of `[unix ms, value]`: `prices`, `market_caps`, `total_volumes`.
The provider picks the granularity from the range (its documentation): one day from the
current time gives 5-minute points, any other range of up to 90 days hourly points, longer
ranges daily points (00:00 UTC). So a range is requested in chunks of at most 90 days, of
equal length, and never shorter than two days when the range is not: every chunk answers
hourly. A year is 5 requests per coin.

How far back: keyless and Demo keys reach the past 365 days (older ranges are refused with
401, error code 10012); paid plans reach further (from 2013 on the Analyst plan and up). The
range is not clipped here: the provider's refusal is reported per coin, with this note.

Each point becomes one record, `{"id", "prices": [ms, v], "market_caps": [ms, v],
"total_volumes": [ms, v]}` (the three arrays' entries of that timestamp, as received), so the
raw row is keyed (coingecko, id, the point's time) like the live rows.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from cryptoetl.models import Accepted, Batch, Rejection, SourceRecord
from cryptoetl.sources.base import SourceContext, SourceInfo
from cryptoetl.sources.coingecko import PER_PAGE, CoinGecko, CoinGeckoSettings, endpoint
from cryptoetl.sources.history import Chunk, CoinName, coin_names
from cryptoetl.sources.http_client import HttpClient
from cryptoetl.transform import history as transform_module

HOURLY_MAX = timedelta(days=90)
HOURLY_MIN = timedelta(days=2)
SERIES = ("prices", "market_caps", "total_volumes")


def hourly_chunks(since: datetime, until: datetime) -> list[Chunk]:
    """[since, until] in equal chunks of at most 90 days (whole hours), oldest first."""
    span = until - since
    if span <= timedelta(0):
        return []
    count = max(1, math.ceil(span / HOURLY_MAX))
    hours = math.ceil(span / timedelta(hours=1) / count)
    step = timedelta(hours=max(hours, 1))
    chunks: list[Chunk] = []
    start = since
    while start < until:
        end = min(start + step, until)
        chunks.append(Chunk(start, end))
        start = end
    return chunks


def points(coin_id: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer's arrays joined by timestamp: one record per point of `prices`.

    A `market_caps` or `total_volumes` entry is matched by its timestamp; an entry that is not
    a `[ms, value]` pair is kept as received (the transform rejects it with the reason).
    """
    by_time: dict[str, dict[Any, Any]] = {}
    for name in SERIES[1:]:
        entries = data.get(name)
        by_time[name] = {}
        if isinstance(entries, list):
            for entry in entries:
                if isinstance(entry, list) and len(entry) == 2:
                    by_time[name][entry[0]] = entry
    records: list[dict[str, Any]] = []
    prices = data.get("prices")
    for entry in prices if isinstance(prices, list) else []:
        stamp = entry[0] if isinstance(entry, list) and entry else None
        record: dict[str, Any] = {"id": coin_id, "prices": entry}
        for name in SERIES[1:]:
            found = by_time[name].get(stamp) if stamp is not None else None
            if found is not None:
                record[name] = found
        records.append(record)
    return records


def align(when: datetime) -> datetime:
    """The start of `when`'s hour: where a range ends by default."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def chunks(since: datetime, until: datetime, now: datetime) -> list[Chunk]:
    """The requests for [since, until]: hourly chunks; a range of less than two days that
    ends at the current hour would answer 5-minute points, so it is asked from two days back."""
    if timedelta(0) < until - since < HOURLY_MIN and until >= align(now):
        return [Chunk(until - HOURLY_MIN, until)]
    return hourly_chunks(since, until)


class CoinGeckoHistory:
    """CoinGecko's history endpoint (see the module docstring)."""

    info: SourceInfo = CoinGecko.info

    def __init__(self, context: SourceContext, session: aiohttp.ClientSession) -> None:
        self.context = context
        self.settings = context.settings.of(CoinGeckoSettings)
        self.target = endpoint(self.settings)
        self.client = HttpClient.for_source(
            context,
            session,
            CoinGecko.info.name,
            per_minute=self.settings.budget(),
            key_setting="COINGECKO_API_KEY",
            has_key=self.settings.coingecko_api_key is not None,
            key_statuses=(),
            background=True,
        )

    @property
    def plan_note(self) -> str:
        if self.settings.coingecko_api_key is None:
            return "keyless CoinGecko reaches the past 365 days only"
        if self.settings.coingecko_api_plan == "demo":
            return "the CoinGecko Demo plan reaches the past 365 days only"
        return "this CoinGecko plan does not include that range"

    async def names(self, coin_ids: list[str]) -> dict[str, CoinName]:
        found: dict[str, CoinName] = {}
        wanted = set(coin_ids)
        for start in range(0, len(coin_ids), PER_PAGE):
            answer = await self.client.get_json(
                self.target.url("coins/markets"),
                params={
                    "vs_currency": "usd",
                    "ids": ",".join(coin_ids[start : start + PER_PAGE]),
                    "per_page": str(PER_PAGE),
                    "page": "1",
                },
                headers=self.target.headers,
                expect=list,
            )
            found.update(coin_names(answer.data, wanted))
        return found

    async def fetch(self, coin_id: str, chunk: Chunk, name: CoinName | None) -> Batch:
        answer = await self.client.get_json(
            self.target.url(f"coins/{coin_id}/market_chart/range"),
            params={
                "vs_currency": "usd",
                "from": str(int(chunk.start.timestamp())),
                "to": str(int(chunk.end.timestamp())),
            },
            headers=self.target.headers,
            expect=dict,
        )
        records = [
            SourceRecord(payload=record, position=n)
            for n, record in enumerate(points(coin_id, answer.data))
        ]
        return Batch(
            source=self.info.name,
            items=records,
            meta=answer.meta,
            cursor={"coin": coin_id, "until": chunk.end.isoformat()},
            label=f"{coin_id} {chunk}",
            context=transform_module.context(coin_id, name),
        )

    def transform(self, item: SourceRecord, batch: Batch) -> Accepted | Rejection:
        return transform_module.coingecko_point(item, batch)
