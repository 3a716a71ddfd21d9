"""The history endpoints of the loopback upstreams (backfill): series in the providers' shapes.

- CoinGecko `/api/v3/coins/{id}/market_chart/range?vs_currency=usd&from=&to=` (unix seconds):
  `{"prices": [[ms, v], ...], "market_caps": [...], "total_volumes": [...]}`, with the
  provider's documented granularity: a range of up to one day ending near now 5-minute
  points, up to 90 days hourly points, longer ranges daily points at 00:00 UTC. The points are
  *generated* (deterministic, from the coin's page-1 price): every hour at the coin's own
  minute offset, so chunk boundaries rarely fall on a point. Coins: page 1's ids.
- CoinPaprika `/v1/coins/{id}/ohlcv/historical?start=&end=&limit=` (dates, RFC 3339 or unix
  seconds; `limit` defaults to 1 and may not exceed 366, as the provider documents): daily
  candles. For `eth-ethereum` in 2022-01-19..2022-04-19 the *recorded* candles are served
  (tests/fixtures/coinpaprika/coinpaprika_coins_eth-ethereum_ohlcv_historical_...json); any
  other day of any coin of `tickers_usd.json` gets a candle shaped like a recorded one,
  re-dated and scaled to the coin's price. Today's candle is partial (time_close = now).

Unknown coins answer 404 with the provider's body (`{"error": "coin not found"}` /
`{"error": "id not found"}`). `history_limit_days[api]` (None: no limit) plays a plan that
reaches only so far back: CoinGecko then answers 401 with its error code 10012 body,
CoinPaprika 402 Payment Required.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.support import FIXTURES

ETH_OHLCV = (
    FIXTURES
    / "coinpaprika"
    / "coinpaprika_coins_eth-ethereum_ohlcv_historical_2022-01-19_to_2022-04-19.json"
)
HOUR = 3600
DAY = 86400
MAX_CANDLES = 366
COINGECKO_RANGE_REFUSAL = (
    "Your request exceeds the allowed time range. Public API users are limited to querying "
    "historical data within the past 365 days. Upgrade to a paid plan to enjoy full historical "
    "data access: https://www.coingecko.com/en/api/pricing. "
)


class HistoryError(Exception):
    """An answer other than 200: status and JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(status, body)


def _offset(coin_id: str) -> int:
    """The coin's own seconds past the hour (0..599), stable across runs."""
    return int(hashlib.sha256(coin_id.encode()).hexdigest()[:6], 16) % 600


def _wave(t: float, period_days: float) -> float:
    return math.sin(2 * math.pi * t / (period_days * DAY))


def coingecko_points(coin: dict[str, Any], start: float, end: float, now: float) -> list[int]:
    """The unix seconds of the points the provider would answer for [start, end]."""
    span = end - start
    if span <= DAY and end >= now - HOUR:
        step, offset = 300, 0
    elif span <= 90 * DAY:
        step, offset = HOUR, _offset(str(coin["id"]))
    else:
        step, offset = DAY, 0
    first = math.ceil((start - offset) / step) * step + offset
    return list(range(int(first), int(end) + 1, step))


def coingecko_series(
    coin: dict[str, Any], start: float, end: float, now: float, limit_days: int | None
) -> dict[str, list[list[float]]]:
    """`market_chart/range` for one coin of page 1 (see the module docstring)."""
    if limit_days is not None and start < now - limit_days * DAY - DAY:
        raise HistoryError(
            401,
            {
                "error": {
                    "status": {
                        "timestamp": datetime.now(UTC).isoformat(),
                        "error_code": 10012,
                        "error_message": COINGECKO_RANGE_REFUSAL,
                    }
                }
            },
        )
    price = float(coin.get("current_price") or 1.0)
    cap = float(coin.get("market_cap") or 0.0)
    volume = float(coin.get("total_volume") or 0.0)
    prices, caps, volumes = [], [], []
    for t in coingecko_points(coin, start, end, now):
        factor = 1 + 0.1 * _wave(t, 7) + 0.03 * _wave(t, 0.5)
        ms = t * 1000
        prices.append([ms, round(price * factor, 8)])
        caps.append([ms, round(cap * factor, 2)])
        volumes.append([ms, round(volume * (1 + 0.2 * _wave(t, 3)), 2)])
    return {"prices": prices, "market_caps": caps, "total_volumes": volumes}


def parse_when(text: str | None, default: datetime) -> datetime:
    """A query time: `2022-01-19`, RFC 3339, or unix seconds."""
    if text is None or not text.strip():
        return default
    text = text.strip()
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Candles:
    """CoinPaprika's daily candles: recorded where there is a recording, shaped elsewhere."""

    def __init__(self) -> None:
        self.recorded: list[dict[str, Any]] = json.loads(ETH_OHLCV.read_bytes())
        self.by_day = {candle["time_open"][:10]: candle for candle in self.recorded}
        whole = [c for c in self.recorded if c["time_close"].endswith("23:59:59Z")]
        self.shapes = whole
        self.mean_close = sum(c["close"] for c in whole) / len(whole)

    def candle(self, ticker: dict[str, Any], day: date, now: datetime) -> dict[str, Any]:
        opened = datetime(day.year, day.month, day.day, tzinfo=UTC)
        closed = opened + timedelta(days=1, seconds=-1)
        if closed > now:
            closed = now.replace(second=0, microsecond=0)
        if ticker["id"] == "eth-ethereum" and day.isoformat() in self.by_day:
            return dict(self.by_day[day.isoformat()])
        shape = self.shapes[day.toordinal() % len(self.shapes)]
        usd = ticker["quotes"]["USD"]
        scale = float(usd["price"]) / self.mean_close
        return {
            "time_open": opened.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "time_close": closed.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": shape["open"] * scale,
            "high": shape["high"] * scale,
            "low": shape["low"] * scale,
            "close": shape["close"] * scale,
            "volume": round(float(usd.get("volume_24h") or 0) * shape["volume"] / 2e10),
            "market_cap": round(
                float(usd.get("market_cap") or 0) * shape["close"] / self.mean_close
            ),
        }

    def history(
        self, ticker: dict[str, Any], query: dict[str, str], limit_days: int | None
    ) -> list[dict[str, Any]]:
        """`ohlcv/historical` for one ticker (see the module docstring)."""
        now = datetime.fromtimestamp(time.time(), UTC)
        if "start" not in query:
            raise HistoryError(400, {"error": "start is required"})
        try:
            start = parse_when(query.get("start"), now).date()
            end = parse_when(query.get("end"), now).date()
            limit = int(query.get("limit", "1"))
        except ValueError:
            raise HistoryError(400, {"error": "invalid parameters"}) from None
        if not 1 <= limit <= MAX_CANDLES:
            raise HistoryError(400, {"error": f"limit must be between 1 and {MAX_CANDLES}"})
        if limit_days is not None and start < now.date() - timedelta(days=limit_days):
            raise HistoryError(
                402,
                {"error": "Getting historical OHLCV data before this date is not allowed"},
            )
        days: list[date] = []
        day = start
        while day <= min(end, now.date()) and len(days) < limit:
            days.append(day)
            day += timedelta(days=1)
        return [self.candle(ticker, day, now) for day in days]
