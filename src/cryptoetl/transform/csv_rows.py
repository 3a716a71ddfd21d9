"""CSV rows to unified records: header mapping by name and synonyms, then strict values.

`map_header` looks at a file's header once and decides which column holds the coin, the price,
the market cap, the volume and the date (case, spaces and punctuation do not matter, synonyms
from real exports are known). `read_row` turns one row into a `UnifiedRecord`, or the list of
reasons it cannot (every problem of the row, not just the first). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptoetl.errors import CsvFileError
from cryptoetl.models import UnifiedRecord
from cryptoetl.transform.csv_values import AmbiguousValue, parse_datetime, parse_number

SOURCE = "csv"

# Synonyms per role, most specific first; compared after `normalize`.
ROLES: dict[str, tuple[str, ...]] = {
    "coin_id": ("id", "slug", "coinid", "assetid"),
    "name": ("name", "currency", "coinname", "currencyname", "assetname", "coin", "asset"),
    "symbol": ("symbol", "ticker", "coinsymbol"),
    "price": (
        "close",
        "priceusd",
        "currentprice",
        "closeusd",
        "closeprice",
        "closingprice",
        "price",
        "lastprice",
        "last",
    ),
    "market_cap": ("marketcap", "marketcapusd", "mcap", "marketcapitalization", "market"),
    # Only USD volumes: `Volume BTC` (coin units) must never be read as volume_24h.
    "volume": (
        "volumeusd",
        "24hvolumeusd",
        "volume24husd",
        "totalvolume",
        "volume24h",
        "24hvolume",
        "volume",
    ),
    "date": (
        "unixtimestamp",
        "unix",
        "timestamp",
        "lastupdated",
        "datetime",
        "date",
        "time",
    ),
}

# Words in a file name that say nothing about which coin it holds.
_NAME_NOISE = frozenset(
    [
        "csv",
        "tsv",
        "txt",
        "data",
        "dataset",
        "datasets",
        "price",
        "prices",
        "history",
        "historical",
        "daily",
        "hourly",
        "weekly",
        "minute",
        "d",
        "1d",
        "1h",
        "1m",
        "usd",
        "usdt",
        "ohlc",
        "ohlcv",
        "export",
        "exports",
        "kaggle",
        "coin",
        "coins",
        "crypto",
        "cryptocurrency",
        "cryptocurrencies",
        "old",
        "new",
        "layout",
        "variant",
        "all",
        "market",
        "markets",
        "snapshot",
        "ticker",
        "tickers",
        "v1",
        "v2",
        "v3",
        "raw",
        "clean",
        "full",
        "sample",
        "subset",
        "lowercase",
        "uppercase",
        "mangled",
        "excel",
    ]
)
_QUOTES = ("USD",)
_NOT_USD_QUOTES = ("USDT", "USDC", "BUSD", "EUR", "GBP", "JPY", "BTC", "ETH", "BNB")
_PAIR_SEPARATOR = re.compile(r"[-/_:]")


def normalize(column: str) -> str:
    """`Market Cap` -> `marketcap`, `24h_volume_usd` -> `24hvolumeusd`."""
    return re.sub(r"[^0-9a-z]", "", column.strip().lstrip("\ufeff").lower())


def slugify(text: str) -> str:
    """`Bitcoin Cash` -> `bitcoin-cash`; the coin id of a file that has only names."""
    return "-".join(part for part in re.split(r"[^\w]+", text.strip().lower()) if part).replace(
        "_", "-"
    )


def unique_header(header: Sequence[str]) -> tuple[str, ...]:
    """Header cells as payload keys: blanks named `column_N`, duplicates suffixed `.1`, `.2`."""
    seen: dict[str, int] = {}
    keys: list[str] = []
    for index, cell in enumerate(header):
        key = cell.strip().lstrip("\ufeff") or f"column_{index + 1}"
        if key in seen:
            seen[key] += 1
            key = f"{key}.{seen[key]}"
        else:
            seen[key] = 0
        keys.append(key)
    return tuple(keys)


def coin_from_file_name(file_name: str) -> str | None:
    """`bitcoin_price.csv` -> `bitcoin`; None when only noise words are left."""
    stem = file_name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    words = [w for w in re.split(r"[^0-9a-z]+", stem.lower()) if w]
    kept = [w for w in words if w not in _NAME_NOISE and not w.isdigit()]
    return "-".join(kept) if kept else None


@dataclass(frozen=True, slots=True)
class CsvLayout:
    """Which payload key plays which role in one file."""

    keys: tuple[str, ...]
    price: str
    coin_id: str | None = None
    name: str | None = None
    symbol: str | None = None
    market_cap: str | None = None
    volume: str | None = None
    date: str | None = None
    file_coin: str | None = None

    def describe(self) -> str:
        roles = {
            "coin": self.coin_id or self.name or self.symbol or f"file name ({self.file_coin})",
            "price": self.price,
            "market_cap": self.market_cap or "-",
            "volume": self.volume or "-",
            "date": self.date or "file modification time",
        }
        return ", ".join(f"{role}={column}" for role, column in roles.items())


def map_header(header: Sequence[str], file_name: str) -> CsvLayout:
    """Map a header to roles, or raise `CsvFileError` listing the columns found."""
    keys = unique_header(header)
    by_norm: dict[str, str] = {}
    for cell, key in zip(header, keys, strict=True):
        by_norm.setdefault(normalize(cell), key)
    found: dict[str, str | None] = {}
    for role, synonyms in ROLES.items():
        found[role] = next((by_norm[s] for s in synonyms if s in by_norm), None)
    file_coin = None
    if not (found["coin_id"] or found["name"] or found["symbol"]):
        file_coin = coin_from_file_name(file_name)
    columns = ", ".join(repr(k) for k in keys) or "none"
    if found["price"] is None:
        raise CsvFileError(
            file_name, f"no price column (close, price, price_usd, ...); columns found: {columns}"
        )
    if not (found["coin_id"] or found["name"] or found["symbol"] or file_coin):
        raise CsvFileError(
            file_name,
            "no coin column (id, slug, name, currency, symbol) and the file name names no "
            f"coin; columns found: {columns}",
        )
    return CsvLayout(
        keys=keys,
        price=found["price"],
        coin_id=found["coin_id"],
        name=found["name"],
        symbol=found["symbol"],
        market_cap=found["market_cap"],
        volume=found["volume"],
        date=found["date"],
        file_coin=file_coin,
    )


def row_payload(keys: Sequence[str], values: Sequence[str]) -> dict[str, str] | str:
    """The row keyed by header, or why its shape is wrong (a stray separator shifts columns)."""
    if len(values) != len(keys):
        extra = values[len(keys) :]
        if len(values) < len(keys) or any(cell.strip() for cell in extra):
            return f"has {len(values)} fields, the header has {len(keys)}"
    return dict(zip(keys, values, strict=False))


def cell(row: Mapping[str, object], key: str | None) -> str:
    """A cell's text; whatever the payload holds, never raises."""
    if key is None:
        return ""
    value = row.get(key)
    return "" if value is None else str(value)


def _split_pair(symbol: str) -> tuple[str, str | None]:
    """`BTCUSD` / `BTC-USD` -> (`BTC`, `USD`); `BTC` -> (`BTC`, None)."""
    parts = [p for p in _PAIR_SEPARATOR.split(symbol.strip().upper()) if p]
    if len(parts) == 2:
        return parts[0], parts[1]
    text = parts[0] if parts else ""
    for quote in (*_NOT_USD_QUOTES, *_QUOTES):
        if text.endswith(quote) and len(text) - len(quote) >= 2:
            return text[: -len(quote)], quote
    return text, None


def coin_of(
    layout: CsvLayout, coin: str, name_cell: str, symbol_cell: str
) -> tuple[str, str | None, str | None, tuple[str, ...]]:
    """The coin id, name and symbol of a row from its coin, name and symbol cells (the coin
    cell is that of the layout's coin id, name or symbol column), and what is wrong with them."""
    name = name_cell.strip() or None
    symbol = symbol_cell.strip() or None
    if layout.coin_id:
        coin_id = coin.strip()
        return coin_id, name, symbol, () if coin_id else (f"no coin id in {layout.coin_id!r}",)
    if layout.name:
        coin_id = slugify(name or "")
        return coin_id, name, symbol, () if coin_id else (f"no coin name in {layout.name!r}",)
    if layout.symbol:
        base, quote = _split_pair(symbol or "")
        problems: tuple[str, ...] = ()
        if not base:
            problems = (f"no symbol in {layout.symbol!r}",)
        elif quote is not None and quote not in _QUOTES:
            problems = (f"pair {symbol!r} is quoted in {quote}, not USD",)
        return slugify(base), name, base or None, problems
    return layout.file_coin or "", name, symbol, ()


def _coin(
    layout: CsvLayout, row: Mapping[str, object], problems: list[str]
) -> tuple[str, str | None, str | None]:
    coin = cell(row, layout.coin_id or layout.name or layout.symbol)
    coin_id, name, symbol, wrong = coin_of(
        layout, coin, cell(row, layout.name), cell(row, layout.symbol)
    )
    problems.extend(wrong)
    return coin_id, name, symbol


def read_row(
    layout: CsvLayout,
    row: Mapping[str, object],
    *,
    default_observed_at: datetime,
    now: datetime,
) -> UnifiedRecord | list[str]:
    """One row as a unified record, or every reason it cannot be one."""
    problems: list[str] = []
    coin_id, name, symbol = _coin(layout, row, problems)

    def number(column: str | None, label: str) -> float | None:
        if column is None:
            return None
        try:
            return parse_number(cell(row, column))
        except AmbiguousValue as exc:
            problems.append(f"{label} {exc}")
            return None

    price = number(layout.price, "price")
    if price is None and not any(p.startswith("price") for p in problems):
        problems.append(f"no price in {layout.price!r}")
    elif price is not None and price <= 0:
        problems.append(f"price {cell(row, layout.price)!r} is not positive")
    market_cap = number(layout.market_cap, "market cap")
    volume = number(layout.volume, "volume")
    for label, value in (("market cap", market_cap), ("volume", volume)):
        if value is not None and value < 0:
            problems.append(f"{label} {value} is negative")

    observed_at: datetime | None = default_observed_at
    if layout.date is not None:
        try:
            observed_at = parse_datetime(cell(row, layout.date), now)
        except AmbiguousValue as exc:
            problems.append(f"date {exc}")
            observed_at = None
        else:
            if observed_at is None:
                problems.append(f"no date in {layout.date!r}")
    if problems or price is None or observed_at is None:
        return problems
    return UnifiedRecord(
        source=SOURCE,
        coin_id=coin_id,
        name=name,
        symbol=symbol,
        price_usd=price,
        market_cap=market_cap,
        volume_24h=volume,
        observed_at=observed_at,
    )
