"""CoinPaprika's history: `/coins/{id}/ohlcv/historical?start=&end=&limit=366&quote=usd`.

Daily candles (`time_open`, `time_close`, `open`, `high`, `low`, `close`, `volume`,
`market_cap`); the close is the observation, at `time_close` (23:59:59 UTC for a whole day).
`start` and `end` are dates, both included; one request answers at most 366 candles, so a
range is requested in chunks of up to 366 days: a year is one request per coin. The current
day's candle is still moving, so a range ends by default at 00:00 UTC today.

How far back each plan reaches (the provider's documentation of this endpoint): Free the
last 24 hours, Starter 30 days, Pro 90 days, Business 365 days, Enterprise no limit. A range
the plan does not include is refused (402 Payment Required): reported per coin, not retried.

Each candle is one record, as received; the raw row is keyed (coinpaprika, id, time_close).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp

from cryptoetl.models import Accepted, Batch, Rejection, SourceRecord
from cryptoetl.sources.base import SourceContext, SourceInfo
from cryptoetl.sources.body import to_records
from cryptoetl.sources.coinpaprika import CoinPaprika, CoinPaprikaSettings, endpoint
from cryptoetl.sources.history import Chunk, CoinName, coin_names
from cryptoetl.sources.http_client import HttpClient
from cryptoetl.transform import history as transform_module

MAX_CANDLES = 366
DAY = timedelta(days=1)


def daily_chunks(since: datetime, until: datetime) -> list[Chunk]:
    """Whole days from the day of `since` to the day before `until` (when `until` is at
    00:00, else its day too), in chunks of at most 366 days; each chunk's end is the start
    of the day after its last candle."""
    first = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = until.astimezone(UTC)
    last = end.replace(hour=0, minute=0, second=0, microsecond=0)
    if last < end:
        last += DAY
    chunks: list[Chunk] = []
    start = first
    while start < last:
        stop = min(start + MAX_CANDLES * DAY, last)
        chunks.append(Chunk(start, stop))
        start = stop
    return chunks


def align(when: datetime) -> datetime:
    """00:00 UTC of `when`'s day: where a range ends by default (today's candle still moves)."""
    return when.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def chunks(since: datetime, until: datetime, now: datetime) -> list[Chunk]:
    """The requests for [since, until]: whole days, up to 366 a request."""
    return daily_chunks(since, until)


class CoinPaprikaHistory:
    """CoinPaprika's history endpoint (see the module docstring)."""

    info: SourceInfo = CoinPaprika.info

    def __init__(self, context: SourceContext, session: aiohttp.ClientSession) -> None:
        self.context = context
        self.settings = context.settings.of(CoinPaprikaSettings)
        self.target = endpoint(self.settings)
        self.client = HttpClient.for_source(
            context,
            session,
            CoinPaprika.info.name,
            per_minute=self.settings.budget(),
            key_setting="COINPAPRIKA_API_KEY",
            has_key=self.settings.coinpaprika_api_key is not None,
            key_statuses=(),
            background=True,
        )

    @property
    def plan_note(self) -> str:
        if self.settings.coinpaprika_api_key is None:
            return "the CoinPaprika Free plan reaches the last 24 hours of OHLCV history only"
        return (
            "CoinPaprika plans reach back 30 days (Starter), 90 (Pro), 365 (Business), "
            "or without limit (Enterprise)"
        )

    async def names(self, coin_ids: list[str]) -> dict[str, CoinName]:
        answer = await self.client.get_json(
            self.target.url("tickers"), params={"quotes": "USD"}, headers=self.target.headers
        )
        return coin_names(answer.data, set(coin_ids))

    async def fetch(self, coin_id: str, chunk: Chunk, name: CoinName | None) -> Batch:
        answer = await self.client.get_json(
            self.target.url(f"coins/{coin_id}/ohlcv/historical"),
            params={
                "start": f"{chunk.start:%Y-%m-%d}",
                "end": f"{chunk.end - DAY:%Y-%m-%d}",
                "limit": str(MAX_CANDLES),
                "quote": "usd",
            },
            headers=self.target.headers,
            expect=list,
        )
        return Batch(
            source=self.info.name,
            items=to_records(answer.data),
            meta=answer.meta,
            cursor={"coin": coin_id, "until": chunk.end.isoformat()},
            label=f"{coin_id} {chunk.start:%Y-%m-%d}..{chunk.end - DAY:%Y-%m-%d}",
            context=transform_module.context(coin_id, name),
        )

    def transform(self, item: SourceRecord, batch: Batch) -> Accepted | Rejection:
        return transform_module.coinpaprika_candle(item, batch)
