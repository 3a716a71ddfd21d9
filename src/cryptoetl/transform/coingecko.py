"""CoinGecko `/coins/markets` items -> unified records (pure).

The key is CoinGecko's coin id: symbols repeat across coins (`usdt` and `weth` appear several
times on one page, once per bridged or wrapped variant). `observed_at` is the item's own
`last_updated`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from cryptoetl.models import Accepted, Batch, Rejection, SourceRecord, UnifiedRecord
from cryptoetl.transform.common import (
    Amount,
    CoinId,
    Price,
    Text,
    Timestamp,
    accept,
    normalize_symbol,
    validate,
)

SOURCE = "coingecko"


class CoinGeckoMarket(BaseModel):
    """The fields of one `/coins/markets` item that cryptoetl relies on."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: CoinId
    symbol: Text = None
    name: Text = None
    current_price: Price
    market_cap: Amount = None
    total_volume: Amount = None
    last_updated: Timestamp


def transform(item: SourceRecord, batch: Batch) -> Accepted | Rejection:
    """One market item -> Accepted (with its raw locator) or Rejection (with every reason)."""
    parsed = validate(CoinGeckoMarket, item, batch)
    if isinstance(parsed, Rejection):
        return parsed
    record = UnifiedRecord(
        source=SOURCE,
        coin_id=parsed.id,
        name=parsed.name,
        symbol=normalize_symbol(parsed.symbol),
        price_usd=parsed.current_price,
        market_cap=parsed.market_cap,
        volume_24h=parsed.total_volume,
        observed_at=parsed.last_updated,
    )
    return accept(record, item, batch)
