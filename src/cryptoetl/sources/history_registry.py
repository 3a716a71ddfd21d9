"""The sources with a history endpoint (backfill), by name: how to plan and open each.

kind = HISTORY["coinpaprika"]
until = kind.align(now)                            # a range's default end
chunks = kind.chunks(since, until, now)            # one request each, oldest first
async with open_history("coinpaprika", context) as history: ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import aiohttp

from cryptoetl.sources import history_coingecko, history_coinpaprika
from cryptoetl.sources.base import SourceContext
from cryptoetl.sources.history import Chunk, History
from cryptoetl.sources.http_client import session_for


@dataclass(frozen=True, slots=True)
class HistoryKind:
    """One source's history endpoint: its resolution, how a range is chunked, the endpoint."""

    name: str
    resolution: str
    build: Callable[[SourceContext, aiohttp.ClientSession], History]
    chunks: Callable[[datetime, datetime, datetime], list[Chunk]]
    align: Callable[[datetime], datetime]


HISTORY: dict[str, HistoryKind] = {
    "coingecko": HistoryKind(
        "coingecko",
        "hourly",
        history_coingecko.CoinGeckoHistory,
        history_coingecko.chunks,
        history_coingecko.align,
    ),
    "coinpaprika": HistoryKind(
        "coinpaprika",
        "daily",
        history_coinpaprika.CoinPaprikaHistory,
        history_coinpaprika.chunks,
        history_coinpaprika.align,
    ),
}


@asynccontextmanager
async def open_history(name: str, context: SourceContext) -> AsyncIterator[History]:
    """The history endpoint of source `name` on the context's session (or one of its own)."""
    kind = HISTORY[name]
    async with session_for(context) as session:
        yield kind.build(context, session)
