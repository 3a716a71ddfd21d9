"""Response models of the asset routes, documented for OpenAPI."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cryptoetl.api.schemas.common import UtcTime
from cryptoetl.sources import REGISTRY

# PostgreSQL cannot store a NUL; ids and symbols have no control characters at all
NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"
NO_NUL = r"^[^\x00]*$"

SOURCES: list[Any] = list(REGISTRY.names)


class _FromAttributes(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class SourceQuote(_FromAttributes):
    """The newest observation of the asset by one source."""

    source: str = Field(examples=["coingecko"])
    coin_id: str = Field(description="The source's own id of the coin.", examples=["bitcoin"])
    price_usd: float = Field(examples=[97000.0])
    market_cap: float | None = Field(examples=[1.9e12])
    volume_24h: float | None = Field(examples=[3.1e10])
    observed_at: UtcTime = Field(description="The source's own time of the observation (UTC).")
    ingested_at: UtcTime = Field(description="When cryptoetl stored it (UTC).")
    age_seconds: float = Field(
        description="Seconds from observed_at to now (negative if the source's clock is ahead)."
    )
    stale: bool = Field(
        description="The source's data is stale, by the health check's rule: its last load "
        "(a success or partial run) finished more than three ETL intervals ago "
        "(ETL_INTERVAL_SECONDS x 3), or it never loaded. How old the observation itself is: "
        "`age_seconds`, and `compared`."
    )
    compared: bool = Field(
        description="In the spread and the median: observed within `spread.window_seconds` "
        "of the asset's newest price. False: older, shown apart, not compared."
    )


class Spread(_FromAttributes):
    """How far the sources' latest prices disagree."""

    percent: float | None = Field(
        description="(max - min) / median x 100 over the sources' latest prices observed "
        "within `window_seconds` of the newest one; null with fewer than two such sources.",
        examples=[0.42],
    )
    min_price: float | None
    max_price: float | None
    median_price: float | None
    compared: int = Field(description="How many sources were compared.", examples=[3])
    observed_span_seconds: float | None = Field(
        description="Time between the oldest and the newest compared observation; null with "
        "fewer than two sources."
    )
    older: int = Field(
        description="Sources whose latest price was observed more than `window_seconds` before "
        "the newest: listed (`compared: false`), not in the median nor the spread.",
        examples=[1],
    )
    window_seconds: float | None = Field(
        description="How close in time prices must be to be compared: three ETL intervals "
        "(ETL_INTERVAL_SECONDS x 3), the span after which data is stale.",
        examples=[2700],
    )


class MappedCoin(_FromAttributes):
    """One source coin mapped to the asset, and how."""

    source: str = Field(examples=["coinpaprika"])
    coin_id: str = Field(examples=["btc-bitcoin"])
    rule: str = Field(
        description="pinned, name_and_symbol or id_and_symbol.", examples=["name_and_symbol"]
    )
    confidence: float = Field(ge=0, le=1, examples=[0.9])
    method: str = Field(description="auto, file or admin: who decided.", examples=["auto"])
    decided_at: UtcTime


class AssetOut(_FromAttributes):
    asset_id: str = Field(description="Stable slug.", examples=["bitcoin"])
    symbol: str = Field(examples=["BTC"])
    name: str = Field(examples=["Bitcoin"])
    derivative: bool = Field(
        description="A wrapped, bridged, pegged or staked token (never merged with the asset "
        "it mirrors)."
    )
    origin: str = Field(description="auto (made by matching), file or admin.")
    created_at: UtcTime
    sources: list[SourceQuote] = Field(
        description="The newest observation of each source, side by side, by source name."
    )
    spread: Spread
    coins: list[MappedCoin] = Field(description="Every source coin mapped to this asset.")


class AssetDetail(AssetOut):
    request_id: str
    api_latency_ms: float


class AssetsPage(BaseModel):
    assets: list[AssetOut]
    total: int = Field(description="Exact number of matching assets.")
    page: int
    page_size: int
    request_id: str
    api_latency_ms: float


class BucketOut(BaseModel):
    start: UtcTime = Field(description="Start of the bucket (UTC-aligned hour or day).")
    open: float = Field(description="Price of the first observation in the bucket.")
    high: float
    low: float
    close: float = Field(description="Price of the last observation in the bucket.")
    market_cap: float | None = Field(
        description="Market cap of the last observation that has one; null if none has."
    )
    volume_24h: float | None = Field(
        description="24 h volume of the last observation that has one; null if none has."
    )
    count: int = Field(description="Observations in the bucket.")
    sources: list[str] = Field(description="Sources with observations in the bucket.")


class HistoryOut(BaseModel):
    asset_id: str
    interval: str = Field(examples=["1h"])
    source: str | None = Field(description="The source asked for; null: all sources combined.")
    combined: str | None = Field(
        description="How sources were combined (null for one source's series)."
    )
    since: UtcTime | None
    until: UtcTime | None
    buckets: list[BucketOut]
    next_since: UtcTime | None = Field(
        description="More buckets follow: pass this as `since` for the next page; null at the end."
    )
    request_id: str
    api_latency_ms: float


class MappingOut(_FromAttributes):
    """The decision for one source coin."""

    source: str = Field(examples=["csv"])
    coin_id: str = Field(examples=["btc"])
    asset_id: str | None = Field(description="Null: unmapped (see `reason`).")
    name: str | None = Field(description="The coin's name the decision was made on.")
    symbol: str | None = Field(description="The coin's symbol the decision was made on.")
    rule: str = Field(
        description="pinned, pinned_unmapped, name_and_symbol, id_and_symbol, ambiguous, "
        "symbol_only or no_symbol.",
        examples=["symbol_only"],
    )
    confidence: float = Field(ge=0, le=1)
    method: str = Field(description="auto, file or admin.")
    reason: str = Field(examples=["only a symbol (BTC), no name: symbols are not unique"])
    evidence: dict[str, Any]
    decided_at: UtcTime = Field(description="When the asset, rule or method last changed.")
    first_seen_at: UtcTime


class MappingsPage(BaseModel):
    mappings: list[MappingOut]
    total: int
    page: int
    page_size: int
    request_id: str
    api_latency_ms: float


class PinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        min_length=1, max_length=100, examples=["csv"], json_schema_extra={"enum": SOURCES}
    )
    coin_id: str = Field(min_length=1, max_length=500, pattern=NO_CONTROL, examples=["btc"])
    asset_id: str | None = Field(
        max_length=100,
        pattern=NO_CONTROL,
        description="The asset to pin the coin to; null keeps the coin unmapped.",
        examples=["bitcoin"],
    )
    note: str | None = Field(
        default=None, max_length=500, pattern=NO_NUL, examples=["exchange BTCUSD file"]
    )
    symbol: str | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        pattern=NO_CONTROL,
        description="With `name`: create the asset when it does not exist yet.",
    )
    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL)


class PinResult(BaseModel):
    source: str
    coin_id: str
    pinned_asset_id: str | None = Field(description="What the admin pin says (null: no asset).")
    asset_created: bool = Field(description="Whether the call created the asset.")
    mapping: MappingOut | None = Field(
        description="The coin's decision now; null when no data of this coin was loaded yet "
        "(the pin applies as soon as it is)."
    )
    request_id: str


class UnpinResult(BaseModel):
    source: str
    coin_id: str
    mapping: MappingOut | None = Field(description="The coin's decision without the admin pin.")
    request_id: str


class RebuildResult(BaseModel):
    new_coins: int
    changed: int = Field(description="Mapping rows inserted or changed.")
    assets_created: int
    mapped: int
    unmapped: int
    unmapped_by_rule: dict[str, int]
    request_id: str
