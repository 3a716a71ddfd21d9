"""The providers' history endpoints, for backfill: one coin's range, fetched chunk by chunk.

    kind = HISTORY["coingecko"]                      # cryptoetl.sources.history_registry
    chunks = kind.chunks(since, until, now)          # requests that give the wanted resolution
    async with open_history("coingecko", context) as history:
        names = await history.names(["bitcoin"])     # name and symbol, when the data has none
        batch = await history.fetch("bitcoin", chunks[0], names.get("bitcoin"))

A chunk is one request and one `Batch` (committed in one transaction with the backfill's
cursor). The batch's items are single observations as received (one point of the provider's
arrays, or one candle), so they become raw rows keyed like the live ones: (source, coin id,
the provider's own timestamp). `transform` maps them to unified records (pure).

Requests go through the source's `HttpClient` with `background=True`: the token bucket they
take from is the one the scheduled ETL uses (the same `RateLimits` in a service), and a
scheduled request waiting for it always goes first. `fetch` raises `SourceError`s: a 4xx
(`UpstreamRejectedError`: unknown coin, a range the plan does not include) is final and
never retried; 429 and 5xx are retried as for the live sources, honouring Retry-After.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cryptoetl.errors import SourceError, UpstreamRejectedError
from cryptoetl.models import Accepted, Batch, Rejection, SourceRecord
from cryptoetl.sources.base import SourceInfo

# A refusal for a range the plan does not include (CoinGecko answers 401 with error code
# 10012, CoinPaprika 402 Payment Required); 403 covers a plan without the endpoint.
REFUSAL_STATUSES = frozenset({401, 402, 403})


@dataclass(frozen=True, slots=True)
class Chunk:
    """One request's range: [start, end] as the provider reads it."""

    start: datetime
    end: datetime

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M}..{self.end:%Y-%m-%d %H:%M}"


@dataclass(frozen=True, slots=True)
class CoinName:
    """What a coin is called (the history endpoints answer numbers only)."""

    name: str | None
    symbol: str | None


def coin_names(items: Any, wanted: Collection[str]) -> dict[str, CoinName]:
    """Name and symbol of each coin of `wanted` in a provider's coin list (`[{"id", "name",
    "symbol", ...}]`: CoinGecko's `/coins/markets`, CoinPaprika's `/tickers`)."""
    found: dict[str, CoinName] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("id") in wanted:
            name, symbol = item.get("name"), item.get("symbol")
            found[item["id"]] = CoinName(
                name if isinstance(name, str) else None,
                symbol if isinstance(symbol, str) else None,
            )
    return found


class History(Protocol):
    """One provider's history endpoint, for one backfill."""

    @property
    def info(self) -> SourceInfo:
        """The live source's info (name, locator): the backfill's rows are that source's."""
        ...

    @property
    def plan_note(self) -> str:
        """How far back the configured plan reaches, for a refusal's message."""
        ...

    async def names(self, coin_ids: list[str]) -> dict[str, CoinName]:
        """Names and symbols of `coin_ids` that the provider knows (one request at most)."""
        ...

    async def fetch(self, coin_id: str, chunk: Chunk, name: CoinName | None) -> Batch:
        """One chunk of one coin's history as a batch (raises `SourceError`)."""
        ...

    def transform(self, item: SourceRecord, batch: Batch) -> Accepted | Rejection:
        """One observation -> Accepted | Rejection (pure, never raises)."""
        ...


def coin_error(history: History, coin_id: str, chunk: Chunk, error: SourceError) -> str:
    """The per-coin error as the run records it: the coin, the range and the provider's answer."""
    said = error.message
    if isinstance(error, UpstreamRejectedError):
        if error.status == 404:
            return f"{coin_id}: unknown to {history.info.name}: {said}"
        if error.status in REFUSAL_STATUSES:
            return (
                f"{coin_id}: {history.info.name} refused the range {chunk}: {said}; "
                f"{history.plan_note}"
            )
    return f"{coin_id}: {said}"
