"""Small in-memory sources for pipeline tests: test doubles of the upstream side only.

A `FakeFeed` is a list of pages of coin dicts; `FakeSource` implements the `Source` protocol
over it the way the HTTP sources do (one batch per page, cursor `{"page": next}`), and can
fail at a given page, or wait on an event before a page (to act while a run is in flight).
The database the pipeline writes to is always the real one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from cryptoetl.errors import RetriesExhaustedError, SourceError, TransientSourceError
from cryptoetl.models import (
    Accepted,
    Batch,
    LocatorKind,
    RawLocator,
    Rejection,
    ResponseMeta,
    SourceRecord,
    UnifiedRecord,
)
from cryptoetl.sources import REGISTRY
from cryptoetl.sources.base import SourceContext, SourceInfo
from cryptoetl.sources.registry import Registry

T0 = datetime(2025, 2, 9, 17, 0, tzinfo=UTC)


def coin(n: int, price: float | None = None, *, minutes: int = 0) -> dict[str, Any]:
    """A coin record as an upstream would send it."""
    return {
        "id": f"coin-{n}",
        "symbol": f"c{n}",
        "name": f"Coin {n}",
        "price": float(n) if price is None else price,
        "market_cap": n * 1000.0,
        "volume": n * 10.0,
        "last_updated": (T0 + timedelta(minutes=minutes)).isoformat(),
    }


def pages(count: int, per_page: int, *, minutes: int = 0) -> list[list[dict[str, Any]]]:
    """`count` pages of `per_page` distinct coins."""
    return [
        [coin(page * per_page + i, minutes=minutes) for i in range(per_page)]
        for page in range(count)
    ]


@dataclass
class FakeFeed:
    """What a fake upstream serves, and what it was asked for."""

    pages: list[list[dict[str, Any]]]
    fail_at: int | None = None  # 1-based page whose fetch raises `error`
    error: SourceError | None = None
    gate: asyncio.Event | None = None  # awaited before fetching page `gate_at`
    gate_at: int = 1
    reached: asyncio.Event = field(default_factory=asyncio.Event)  # set when waiting at gate
    fetched: list[int] = field(default_factory=list)


class FakeSource:
    """A paged source over a `FakeFeed` (see the module docstring)."""

    def __init__(self, info: SourceInfo, feed: FakeFeed, context: SourceContext) -> None:
        self.info = info
        self.name = info.name
        self.feed = feed
        self.context = context

    async def fetch(self, cursor: Mapping[str, Any]) -> AsyncIterator[Batch]:
        page = int(cursor.get("page") or 1)
        total = len(self.feed.pages)
        while page <= total:
            if self.feed.gate is not None and page == self.feed.gate_at:
                self.feed.reached.set()
                await self.feed.gate.wait()
            self.feed.fetched.append(page)
            if page == self.feed.fail_at:
                raise self.feed.error or RetriesExhaustedError(
                    self.name,
                    4,
                    TransientSourceError(self.name, "HTTP 503 Service Unavailable", status=503),
                )
            items = [
                SourceRecord(payload=record, position=i)
                for i, record in enumerate(self.feed.pages[page - 1])
            ]
            yield Batch(
                source=self.name,
                items=items,
                meta=ResponseMeta(
                    url=f"fake://{self.name}/{page}",
                    status=200,
                    fetched_at=datetime.now(UTC),
                    elapsed_ms=1.0,
                ),
                cursor={"page": page + 1 if page < total else None},
                label=f"page {page}",
            )
            page += 1

    def transform(self, item: SourceRecord, batch: Batch) -> Accepted | Rejection:
        data = item.payload
        price = data.get("price")
        if not isinstance(price, int | float) or isinstance(price, bool):
            return Rejection(
                locator=f"{batch.label} #{item.position} id={data.get('id')}",
                raw=orjson.dumps(data).decode(),
                reason="price: missing",
            )
        observed = datetime.fromisoformat(str(data["last_updated"]))
        record = UnifiedRecord(
            source=self.name,
            coin_id=str(data["id"]),
            name=data.get("name"),
            symbol=str(data.get("symbol", "")).upper() or None,
            price_usd=float(price),
            market_cap=data.get("market_cap"),
            volume_24h=data.get("volume"),
            observed_at=observed,
        )
        return Accepted(
            record=record, locator=RawLocator(key=record.coin_id, at=observed), item=item
        )


@dataclass(frozen=True)
class FakeSourceClass:
    """What the registry holds for a fake source: its info, and its feed for every run."""

    info: SourceInfo
    feed: FakeFeed

    def __call__(self, context: SourceContext) -> FakeSource:
        return FakeSource(self.info, self.feed, context)


def registry(**feeds: FakeFeed) -> Registry:
    """A registry of fake sources, one per keyword (`coingecko=FakeFeed(...)`); a fake named
    like a real source ranks like it when assets are matched."""
    classes = []
    for name, feed in feeds.items():
        real = REGISTRY.info(name)
        rank, catalog = (real.match_rank, real.catalog) if real is not None else (100, False)
        info = SourceInfo(name, LocatorKind.OBSERVATION, match_rank=rank, catalog=catalog)
        classes.append(FakeSourceClass(info, feed))
    return Registry(*classes)
