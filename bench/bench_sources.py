"""How fast the HTTP sources turn answers into unified records (no database involved).

    .venv/bin/python -m bench.bench_sources

Measures, as medians of 5 rounds on this machine:
- transform: records/s of the pure CoinGecko and CoinPaprika transforms (pydantic validation
  included) over the recorded payloads, repeated to 50,000 records;
- fetch: wall time of fetching and transforming the real 250-coin CoinGecko page and the
  81-ticker CoinPaprika list from the loopback upstream (JSON decode and HTTP included).
Ratios against the database's ingest figures in docs are what matter: the loader is the limit
as long as these rates are far above it.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from tests.support.upstream import Upstream

from cryptoetl.models import Batch, ResponseMeta, SourceRecord
from cryptoetl.sources import REGISTRY, load_settings
from cryptoetl.sources.base import SourceContext
from cryptoetl.transform import coingecko, coinpaprika

ROUNDS = 5
RECORDS = 50_000


def _batch(source: str) -> Batch:
    meta = ResponseMeta(url="bench", status=200, fetched_at=datetime.now(UTC), elapsed_ms=0.0)
    return Batch(source=source, items=[], meta=meta, cursor={}, label="bench")


def transform_rate(items: list[dict[str, Any]], transform: Any, source: str) -> float:
    records = [SourceRecord(payload=items[i % len(items)], position=i) for i in range(RECORDS)]
    batch = _batch(source)
    started = time.perf_counter()
    for record in records:
        transform(record, batch)
    return RECORDS / (time.perf_counter() - started)


async def fetch_seconds(upstream: Upstream, name: str) -> float:
    settings = load_settings(
        env_file=None,
        coingecko_base_url=upstream.coingecko_url,
        coinpaprika_base_url=upstream.coinpaprika_url,
        coingecko_pages=1,
        rate_limit_delay=0,
        coingecko_requests_per_minute=60_000,
        coinpaprika_requests_per_minute=60_000,
    )
    cls = REGISTRY.get(name)
    assert cls is not None, name
    source = cls(SourceContext(settings=settings))
    started = time.perf_counter()
    async for batch in source.fetch({}):
        for item in batch.items:
            source.transform(item, batch)
    return time.perf_counter() - started


async def main() -> None:
    upstream = await Upstream().start()
    try:
        gecko = [
            transform_rate(upstream.page_1, coingecko.transform, "coingecko") for _ in range(ROUNDS)
        ]
        paprika = [
            transform_rate(upstream.tickers, coinpaprika.transform, "coinpaprika")
            for _ in range(ROUNDS)
        ]
        fetch_gecko = [await fetch_seconds(upstream, "coingecko") for _ in range(ROUNDS)]
        fetch_paprika = [await fetch_seconds(upstream, "coinpaprika") for _ in range(ROUNDS)]
    finally:
        await upstream.close()
    rows = [
        ("transform coingecko", f"{statistics.median(gecko):,.0f} records/s"),
        ("transform coinpaprika", f"{statistics.median(paprika):,.0f} records/s"),
        ("fetch+transform coingecko page (250)", f"{statistics.median(fetch_gecko) * 1e3:.1f} ms"),
        ("fetch+transform coinpaprika (81)", f"{statistics.median(fetch_paprika) * 1e3:.1f} ms"),
    ]
    print(f"medians of {ROUNDS} rounds")
    for label, value in rows:
        print(f"{label:<40} {value:>20}")


if __name__ == "__main__":
    asyncio.run(main())
