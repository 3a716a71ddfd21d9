"""Adding a source is one module and one registry line: a source written here, in the test
package alone (its module, its settings, one `with_sources` line), runs end to end.

`Tide` serves a few coins from its own settings (`TIDE_COINS`, `TIDE_PRICE`) with no network.
Nothing in `src/` names it: no config field, no raw table, no migration, no matcher entry. The
real pipeline loads it into the unified history and the shared raw table, its coins are matched
to assets, and the real app serves its rows and its stats.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import Field

from cryptoetl.config import Settings, SourceSettings
from cryptoetl.db.pool import Pool
from cryptoetl.errors import ConfigError
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.models import (
    Accepted,
    Batch,
    LocatorKind,
    RawLocator,
    Rejection,
    ResponseMeta,
    RunStatus,
    RunTrigger,
    SourceRecord,
    UnifiedRecord,
)
from cryptoetl.sources import REGISTRY, load_settings
from cryptoetl.sources.base import SourceContext, SourceInfo
from tests.support.raw_pages import RAW_RECORDS

OBSERVED = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


# --- the new source: its settings, its class (this is all a new source is) ---------------------


class TideSettings(SourceSettings):
    """Tide's settings: environment variables of the same names."""

    tide_coins: str = Field(default="bitcoin:BTC:Bitcoin,ripple:XRP:XRP", min_length=1)
    tide_price: float = Field(default=100.0, gt=0)


class Tide:
    """A source with no upstream: one batch of the coins its settings name."""

    info = SourceInfo("tide", LocatorKind.OBSERVATION, match_rank=5, settings=TideSettings)

    def __init__(self, context: SourceContext) -> None:
        self.context = context

    async def fetch(self, cursor: Mapping[str, Any]) -> AsyncIterator[Batch]:
        options = self.context.settings.of(TideSettings)
        items = []
        for position, entry in enumerate(options.tide_coins.split(",")):
            coin_id, symbol, name = entry.split(":")
            payload = {"id": coin_id, "symbol": symbol, "name": name, "usd": options.tide_price}
            items.append(SourceRecord(payload, position))
        meta = ResponseMeta("tide://coins", 200, self.context.now(), 0.0)
        yield Batch("tide", items, meta, cursor={"seen": len(items)}, label="coins")

    def transform(self, item: SourceRecord, batch: Batch) -> Accepted | Rejection:
        data = item.payload
        record = UnifiedRecord(
            source="tide",
            coin_id=str(data["id"]),
            name=str(data["name"]),
            symbol=str(data["symbol"]),
            price_usd=float(data["usd"]),
            market_cap=None,
            volume_24h=None,
            observed_at=OBSERVED,
        )
        return Accepted(record, RawLocator(record.coin_id, at=OBSERVED), item)


WITH_TIDE = REGISTRY.with_sources(Tide)  # the one registry line

# ------------------------------------------------------------------------------------------------


@pytest.fixture
def tide_settings(db_url: str, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": db_url,
            "cryptoetl_data_dir": tmp_path / "data",
            "etl_run_on_startup": False,
            "log_format": "json",
        }
        return load_settings(env_file=None, registry=WITH_TIDE, **{**values, **overrides})

    return make


def test_its_settings_are_read_and_checked_with_the_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TIDE_* come from the environment like any setting; a bad one is one line naming it."""
    monkeypatch.setenv("TIDE_PRICE", "42.5")
    settings = load_settings(env_file=None, registry=WITH_TIDE)
    assert settings.of(TideSettings).tide_price == 42.5
    assert "tide" in settings.enabled_sources
    monkeypatch.setenv("TIDE_PRICE", "-1")
    with pytest.raises(ConfigError, match=r"^TIDE_PRICE: Input should be greater than 0"):
        load_settings(env_file=None, registry=WITH_TIDE)


async def test_a_source_from_the_test_package_runs_end_to_end(
    tide_settings: Callable[..., Settings],
    pool: Pool,
    make_client: Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]],
) -> None:
    """Loaded (raw + unified, counted), matched to assets, and served by the real API."""
    settings = tide_settings(enabled_sources="tide", tide_price=250.0)
    pipeline = Pipeline(settings, pool, registry=WITH_TIDE)

    [outcome] = await pipeline.run(None, RunTrigger.CLI)
    assert outcome.source == "tide"
    assert outcome.status is RunStatus.SUCCESS, outcome.error
    assert (outcome.counts.fetched, outcome.counts.inserted) == (2, 2)

    rows = await pool.fetch(
        "SELECT u.coin_id, u.price_usd, r.coin_id AS raw_coin, r.payload->>'symbol' AS raw_symbol"  # noqa: S608
        f" FROM unified_crypto_data u JOIN ({RAW_RECORDS}) r ON r.id = u.raw_id"
        " AND r.source = 'tide' AND r.coin_id = u.coin_id AND r.source_updated_at = u.observed_at"
        " WHERE u.source = 'tide' ORDER BY u.coin_id"
    )
    assert [tuple(row) for row in rows] == [
        ("bitcoin", 250.0, "bitcoin", "BTC"),
        ("ripple", 250.0, "ripple", "XRP"),
    ]
    assert await pool.fetchval("SELECT row_count FROM source_stats WHERE source = 'tide'") == 2
    mapped = await pool.fetch(
        "SELECT coin_id, asset_id FROM asset_mappings WHERE source = 'tide' ORDER BY coin_id"
    )
    assert [(row["coin_id"], row["asset_id"]) for row in mapped] == [
        ("bitcoin", "bitcoin"),
        ("ripple", "xrp"),
    ]

    [again] = await pipeline.run(None, RunTrigger.CLI)  # a re-run stores nothing twice
    assert (again.counts.inserted, again.counts.unchanged) == (0, 2)

    async with make_client(settings) as client:
        page = (await client.get("/api/v1/data", params={"coin_id": "ripple"})).json()
        stats = (await client.get("/api/v1/stats")).json()
    assert [(row["source"], row["price_usd"]) for row in page["data"]] == [("tide", 250.0)]
    assert page["total"] == 1
    tide = next(s for s in stats["sources"] if s["source"] == "tide")
    assert tide["status"] == "success"
    assert tide["records_processed"] == 2
