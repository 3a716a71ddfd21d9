"""Data for the asset tests: the three sources' real fixtures through the real pipeline, and a
small hand-written series."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptoetl.db.pool import Pool, open_pool
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.models import RunStatus, RunTrigger, SourceOutcome
from cryptoetl.sources import load_settings
from tests.support import FIXTURES
from tests.support.upstream import Upstream


def copy_csv_fixtures(target: Path, names: Sequence[str] | None = None) -> Path:
    """The CSV fixture files (all, or `names`) in a directory of their own."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted((FIXTURES / "csv").glob("*.csv")):
        if names is None or path.name in names:
            shutil.copy2(path, target / path.name)
    return target


async def load_fixtures(url: str, csv_dir: Path, data_dir: Path) -> list[SourceOutcome]:
    """CoinGecko's real page and CoinPaprika's tickers from the loopback upstream, and the CSV
    files in `csv_dir`, through one real pipeline run (which maps the coins to assets)."""
    upstream = await Upstream().start()
    try:
        settings = load_settings(
            env_file=None,
            database_url=url,
            cryptoetl_data_dir=data_dir,
            log_format="json",
            coingecko_base_url=upstream.coingecko_url,
            coinpaprika_base_url=upstream.coinpaprika_url,
            coingecko_pages=1,
            coingecko_requests_per_minute=60_000,
            coinpaprika_requests_per_minute=60_000,
            rate_limit_delay=0,
            csv_file_path=str(csv_dir),
        )
        async with open_pool(url, max_size=4) as pool:
            outcomes = await Pipeline(settings, pool).run(None, RunTrigger.CLI)
    finally:
        await upstream.close()
    loaded = {o.source: o.status for o in outcomes}
    # the mangled Excel file's rows are rejected, so the CSV run is partial by design
    assert loaded == {
        "coingecko": RunStatus.SUCCESS,
        "coinpaprika": RunStatus.SUCCESS,
        "csv": RunStatus.PARTIAL,
    }, outcomes
    return outcomes


async def observe(
    pool: Pool,
    source: str,
    coin_id: str,
    name: str | None,
    symbol: str | None,
    when: str = "2025-03-01 10:00:00",
    price: float = 1.0,
) -> None:
    await pool.execute(
        "INSERT INTO unified_crypto_data (coin_id, name, symbol, price_usd, source, observed_at,"
        " run_id) VALUES ($1, $2, $3, $4, $5, $6, 0)",
        coin_id,
        name,
        symbol,
        price,
        source,
        at(when),
    )


def at(text: str) -> datetime:
    """`2025-03-01 10:20` (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# A hand-written series of one coin at two sources (prices, caps, volumes chosen so every
# bucket value can be worked out by hand; see tests/db/test_assets_history.py).
SERIES: list[tuple[str, str, str, float, float | None, float | None]] = [
    # source, coin_id, observed_at (UTC), price, market cap, volume
    ("coingecko", "testcoin", "2025-03-01 10:00:00", 10.0, 100.0, 1000.0),
    ("coingecko", "testcoin", "2025-03-01 10:20:00", 12.0, 120.0, 1200.0),
    ("coinpaprika", "tst-testcoin", "2025-03-01 10:20:00", 12.5, 125.0, 1250.0),
    ("coingecko", "testcoin", "2025-03-01 10:40:00", 9.0, None, 900.0),
    ("coingecko", "testcoin", "2025-03-01 10:50:00", 8.5, None, 850.0),
    ("coinpaprika", "tst-testcoin", "2025-03-01 10:50:00", 8.0, 80.0, 800.0),
    ("coingecko", "testcoin", "2025-03-01 11:00:00", 11.0, 110.0, 1100.0),
    ("coinpaprika", "tst-testcoin", "2025-03-01 11:30:00", 14.0, 140.0, 1400.0),
    ("coingecko", "testcoin", "2025-03-01 12:59:59", 13.0, 130.0, None),
    ("coingecko", "testcoin", "2025-03-01 23:59:59", 15.0, 150.0, 1500.0),
    ("coingecko", "testcoin", "2025-03-02 00:00:00", 16.0, 160.0, 1600.0),
]


async def load_series(pool: Pool) -> None:
    """SERIES into the unified table, named `Testcoin` / `TST` at both sources."""
    await pool.executemany(
        """
        INSERT INTO unified_crypto_data (coin_id, name, symbol, price_usd, market_cap,
            volume_24h, source, observed_at, run_id)
        VALUES ($1, 'Testcoin', $2, $3, $4, $5, $6, $7, 0)
        """,
        [
            (coin, "tst" if source == "coingecko" else "TST", price, cap, volume, source, at(t))
            for source, coin, t, price, cap, volume in SERIES
        ],
    )
