"""The cross-source identity of coins: what the matcher decides, and how far sources disagree.

Pure values (standard library only); the matching itself is `cryptoetl.assets.match`.

A `Coin` is one (source, coin_id) with the name and symbol it is known by; an `Asset` is one
instrument across sources; a `Pin` an operator's decision for one coin; a `Decision` the
outcome for one coin, with its `Rule` and `Method`.

`spread_of` says how far the sources disagree about an asset's price:

    spread_of([(45000.0, t1), (45100.0, t2), (44900.0, t3)])
    # Spread(percent=0.444..., min_price=44900.0, max_price=45100.0, median_price=45000.0,
    #        compared=3, observed_span_seconds=(max(t) - min(t)))

`percent` = (max - min) / median x 100, over the latest price of each source observed within
`window_seconds` of the newest one (the API passes three ETL intervals, the same span after
which data is called stale); older prices are counted in `older` and shown apart, never in the
median. None with fewer than two sources compared (nothing to compare).
`observed_span_seconds` is how far apart in time the compared observations are.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Method(StrEnum):
    """Who decided: the matcher, the shipped overrides file, or an operator through the API."""

    AUTO = "auto"
    FILE = "file"
    ADMIN = "admin"


class Rule(StrEnum):
    PINNED = "pinned"
    PINNED_UNMAPPED = "pinned_unmapped"
    NAME_AND_SYMBOL = "name_and_symbol"
    ID_AND_SYMBOL = "id_and_symbol"
    AMBIGUOUS = "ambiguous"
    SYMBOL_ONLY = "symbol_only"
    NO_SYMBOL = "no_symbol"


CONFIDENCE: dict[Rule, float] = {
    Rule.PINNED: 1.0,
    Rule.PINNED_UNMAPPED: 1.0,
    Rule.NAME_AND_SYMBOL: 0.9,
    Rule.ID_AND_SYMBOL: 0.75,
    Rule.AMBIGUOUS: 0.0,
    Rule.SYMBOL_ONLY: 0.0,
    Rule.NO_SYMBOL: 0.0,
}


@dataclass(frozen=True, slots=True)
class Coin:
    """One (source, coin_id) and the name and symbol it is known by."""

    source: str
    coin_id: str
    name: str | None
    symbol: str | None

    @property
    def ref(self) -> str:
        return f"{self.source}:{self.coin_id}"


@dataclass(frozen=True, slots=True)
class Asset:
    asset_id: str
    symbol: str
    name: str
    derivative: bool = False
    origin: Method = Method.AUTO


@dataclass(frozen=True, slots=True)
class Pin:
    """An operator's decision for one coin: this asset, or (None) no asset at all."""

    asset_id: str | None
    method: Method
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    source: str
    coin_id: str
    asset_id: str | None
    rule: Rule
    method: Method
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def confidence(self) -> float:
        return CONFIDENCE[self.rule]


@dataclass(frozen=True, slots=True)
class Spread:
    percent: float | None
    min_price: float | None
    max_price: float | None
    median_price: float | None
    compared: int
    observed_span_seconds: float | None
    # sources whose latest price is older than `window_seconds` before the newest one: shown
    # apart, not compared (a 2017 CSV close is no evidence of disagreement with a live price)
    older: int = 0
    window_seconds: float | None = None


def comparable(times: Sequence[datetime], window_seconds: float | None) -> list[bool]:
    """For each time: is it within `window_seconds` of the newest (None: every time is)?"""
    if not times or window_seconds is None:
        return [True] * len(times)
    newest = max(times)
    return [(newest - at).total_seconds() <= window_seconds for at in times]


def spread_of(
    quotes: Sequence[tuple[float, datetime]], window_seconds: float | None = None
) -> Spread:
    """The spread of (price, observed_at) pairs, one per source, over those observed within
    `window_seconds` of the newest (see `comparable`); the others are counted as `older`."""
    if not quotes:
        return Spread(None, None, None, None, 0, None, 0, window_seconds)
    keep = comparable([at for _, at in quotes], window_seconds)
    near = [quote for quote, kept in zip(quotes, keep, strict=True) if kept]
    older = len(quotes) - len(near)
    prices = [price for price, _ in near]
    low, high, median = min(prices), max(prices), statistics.median(prices)
    if len(near) < 2:
        return Spread(None, low, high, median, len(near), None, older, window_seconds)
    times = [at for _, at in near]
    span = (max(times) - min(times)).total_seconds()
    percent = (high - low) / median * 100 if median > 0 else None
    return Spread(percent, low, high, median, len(near), span, older, window_seconds)
