"""History observations (backfill) -> unified records (pure).

- CoinGecko: one point of `/coins/{id}/market_chart/range`, `{"id", "prices": [ms, price],
  "market_caps": [ms, cap], "total_volumes": [ms, volume]}`; `observed_at` is the point's time.
- CoinPaprika: one daily candle of `/coins/{id}/ohlcv/historical`; the close is the price,
  observed at `time_close`.

The history endpoints answer numbers only: the name and symbol come from the batch's context
(`context(coin_id, name)`), as the backfill found them (the coin's latest live observation,
else the provider's coin list), so the rows map to the same asset as the live ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from cryptoetl.models import Accepted, Batch, Rejection, SourceRecord, UnifiedRecord
from cryptoetl.transform.common import (
    EARLIEST,
    Amount,
    CoinId,
    Price,
    Timestamp,
    accept,
    normalize_symbol,
    validate,
)


class Named(Protocol):
    @property
    def name(self) -> str | None: ...

    @property
    def symbol(self) -> str | None: ...


def context(coin_id: str, name: Named | None) -> dict[str, Any]:
    """A history batch's context: the coin it is about, and its name and symbol if known."""
    return {
        "coin_id": coin_id,
        "name": name.name if name is not None else None,
        "symbol": name.symbol if name is not None else None,
    }


def _from_millis(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("not a unix time in milliseconds")
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError("not a unix time in milliseconds") from None


def _not_before_bitcoin(value: datetime) -> datetime:
    if value < EARLIEST:
        raise ValueError("before 2009-01-03, not a market observation")
    return value


Millis = Annotated[datetime, BeforeValidator(_from_millis), AfterValidator(_not_before_bitcoin)]


class CoinGeckoPoint(BaseModel):
    """One point of the three arrays of `market_chart/range`, joined by timestamp."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: CoinId
    prices: tuple[Millis, Price]
    market_caps: tuple[Millis, Amount] | None = None
    total_volumes: tuple[Millis, Amount] | None = None


class CoinPaprikaCandle(BaseModel):
    """The fields of one OHLCV candle that cryptoetl uses."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    time_close: Timestamp
    close: Price
    market_cap: Amount = None
    volume: Amount = None


def _names(batch: Batch) -> tuple[str | None, str | None]:
    name, symbol = batch.context.get("name"), batch.context.get("symbol")
    return (
        name if isinstance(name, str) and name.strip() else None,
        normalize_symbol(symbol.strip()) if isinstance(symbol, str) and symbol.strip() else None,
    )


def coingecko_point(item: SourceRecord, batch: Batch) -> Accepted | Rejection:
    """One market_chart point -> Accepted | Rejection (with every reason)."""
    parsed = validate(CoinGeckoPoint, item, batch)
    if isinstance(parsed, Rejection):
        return parsed
    name, symbol = _names(batch)
    record = UnifiedRecord(
        source=batch.source,
        coin_id=parsed.id,
        name=name,
        symbol=symbol,
        price_usd=parsed.prices[1],
        market_cap=parsed.market_caps[1] if parsed.market_caps else None,
        volume_24h=parsed.total_volumes[1] if parsed.total_volumes else None,
        observed_at=parsed.prices[0],
    )
    return accept(record, item, batch)


def coinpaprika_candle(item: SourceRecord, batch: Batch) -> Accepted | Rejection:
    """One daily candle -> Accepted | Rejection (with every reason)."""
    parsed = validate(CoinPaprikaCandle, item, batch)
    if isinstance(parsed, Rejection):
        return parsed
    name, symbol = _names(batch)
    record = UnifiedRecord(
        source=batch.source,
        coin_id=str(batch.context["coin_id"]),
        name=name,
        symbol=symbol,
        price_usd=parsed.close,
        market_cap=parsed.market_cap,
        volume_24h=parsed.volume,
        observed_at=parsed.time_close,
    )
    return accept(record, item, batch)
