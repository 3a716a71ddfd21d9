"""How far the sources disagree about an asset's price. Pure.

    spread_of([(45000.0, t1), (45100.0, t2), (44900.0, t3)])
    # Spread(percent=0.444..., min_price=44900.0, max_price=45100.0, median_price=45000.0,
    #        compared=3, observed_span_seconds=(max(t) - min(t)))

`percent` = (max - min) / median x 100, over the latest price of each source; None with fewer
than two sources (nothing to compare). `observed_span_seconds` is how far apart in time the
compared observations are: a spread between a price of this minute and one of last year says
more about the year than about the sources.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Spread:
    percent: float | None
    min_price: float | None
    max_price: float | None
    median_price: float | None
    compared: int
    observed_span_seconds: float | None


def spread_of(quotes: Sequence[tuple[float, datetime]]) -> Spread:
    """The spread of (price, observed_at) pairs, one per source."""
    if not quotes:
        return Spread(None, None, None, None, 0, None)
    prices = [price for price, _ in quotes]
    low, high, median = min(prices), max(prices), statistics.median(prices)
    if len(quotes) < 2:
        return Spread(None, low, high, median, len(quotes), None)
    times = [at for _, at in quotes]
    span = (max(times) - min(times)).total_seconds()
    percent = (high - low) / median * 100 if median > 0 else None
    return Spread(percent, low, high, median, len(quotes), span)
