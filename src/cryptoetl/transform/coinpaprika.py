"""CoinPaprika `/tickers` items -> unified records (pure).

The USD figures are under `quotes.USD`; the key is CoinPaprika's coin id (`btc-bitcoin`);
`observed_at` is the item's own `last_updated`.
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

SOURCE = "coinpaprika"


class UsdQuote(BaseModel):
    """`quotes.USD` of a ticker."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    price: Price
    market_cap: Amount = None
    volume_24h: Amount = None


class Quotes(BaseModel):
    """`quotes`: cryptoetl asks for USD only."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    USD: UsdQuote


class CoinPaprikaTicker(BaseModel):
    """The fields of one `/tickers` item that cryptoetl relies on."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: CoinId
    name: Text = None
    symbol: Text = None
    last_updated: Timestamp
    quotes: Quotes


def transform(item: SourceRecord, batch: Batch) -> Accepted | Rejection:
    """One ticker -> Accepted (with its raw locator) or Rejection (with every reason)."""
    parsed = validate(CoinPaprikaTicker, item, batch)
    if isinstance(parsed, Rejection):
        return parsed
    usd = parsed.quotes.USD
    record = UnifiedRecord(
        source=SOURCE,
        coin_id=parsed.id,
        name=parsed.name,
        symbol=normalize_symbol(parsed.symbol),
        price_usd=usd.price,
        market_cap=usd.market_cap,
        volume_24h=usd.volume_24h,
        observed_at=parsed.last_updated,
    )
    return accept(record, item, batch)
