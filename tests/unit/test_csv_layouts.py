"""The twelve real fixture files: each maps without a hand-written mapping and reads right."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, datetime

import pytest

from cryptoetl.errors import CsvFileError
from cryptoetl.models import UnifiedRecord
from cryptoetl.transform.csv_rows import coin_from_file_name, map_header, read_row, row_payload
from tests.support import FIXTURES as TEST_FIXTURES

FIXTURES = TEST_FIXTURES / "csv"
NOW = datetime(2026, 11, 25, tzinfo=UTC)
MTIME = datetime(2026, 1, 1, tzinfo=UTC)


def load(name: str) -> tuple[list[UnifiedRecord], list[tuple[int, list[str]]]]:
    """Every row of a fixture through map_header + read_row: (records, (line, reasons))."""
    path = FIXTURES / name
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        layout = map_header(next(reader), name)
        records: list[UnifiedRecord] = []
        rejected: list[tuple[int, list[str]]] = []
        for values in reader:
            if not values:
                continue
            payload = row_payload(layout.keys, values)
            assert isinstance(payload, dict)
            result = read_row(layout, payload, default_observed_at=MTIME, now=NOW)
            if isinstance(result, list):
                rejected.append((reader.line_num, result))
            else:
                records.append(result)
    return records, rejected


@pytest.mark.parametrize(
    ("name", "rows", "coins"),
    [
        ("csv_kaggle_coin_Ethereum.csv", 2160, {"ethereum"}),
        ("csv_kaggle_coin_Tether.csv", 2318, {"tether"}),
        ("csv_kaggle_coin_XRP.csv", 2893, {"xrp"}),
        ("csv_kaggle_coin_Aave.csv", 275, {"aave"}),
        ("csv_coin_Bitcoin_lowercase_variant_2020-2025.csv", 1792, {"bitcoin"}),
        ("csv_kaggle_bitcoin_price_old_layout.csv", 1760, {"bitcoin"}),
        ("csv_all_currencies_multi_coin.csv", 4502, {"bitcoin", "ripple", "ethereum", "ardor"}),
        ("csv_coinmarketcap_v1_ticker_snapshot_2017-12-06.csv", 1326, None),
        ("csv_cryptodatadownload_Coinbase_BTCUSD_d.csv", 2087, {"btc"}),
        ("csv_coingecko_markets_pandas_export_250_2024-11-17.csv", 250, None),
        ("csv_kaggle_crypto-markets_subset_dmy_dates.csv", 29999, None),
    ],
)
def test_well_formed_files_accept_every_row(name: str, rows: int, coins: set[str] | None) -> None:
    """Every row of a well-formed real file becomes a record; none is rejected."""
    records, rejected = load(name)
    assert rejected == []
    assert len(records) == rows
    if coins is not None:
        assert {r.coin_id for r in records} == coins
    assert all(r.price_usd > 0 for r in records)
    keys = Counter((r.coin_id, r.observed_at) for r in records)
    assert max(keys.values()) == 1, "one observation per coin and time"


def test_kaggle_values_match_the_file() -> None:
    """Spot check: the first Ethereum row's close, volume, market cap, name, symbol, time."""
    records, _ = load("csv_kaggle_coin_Ethereum.csv")
    first = records[0]
    assert first.coin_id == "ethereum"
    assert first.name == "Ethereum"
    assert first.symbol == "ETH"
    assert first.price_usd == 0.7533249855041504
    assert first.volume_24h == 674188.0
    assert first.market_cap == 45486894.2408
    assert first.observed_at == datetime(2015, 8, 8, 23, 59, 59, tzinfo=UTC)


def test_old_layout_reads_quoted_thousands_dashes_and_month_names() -> None:
    """`"Feb 20, 2018"`, `"9,926,540,000"` and `-` volumes; the coin comes from the file name."""
    records, _ = load("csv_kaggle_bitcoin_price_old_layout.csv")
    newest = records[0]
    assert newest.coin_id == "bitcoin"
    assert newest.observed_at == datetime(2018, 2, 20, tzinfo=UTC)
    assert newest.price_usd == 11403.70
    assert newest.volume_24h == 9_926_540_000
    assert newest.market_cap == 189_536_000_000
    assert sum(1 for r in records if r.volume_24h is None) == 243


def test_dmy_file_reads_day_first_and_market_as_market_cap() -> None:
    """`28/4/2013` is 28 April; the `market` column is the market cap."""
    records, _ = load("csv_kaggle_crypto-markets_subset_dmy_dates.csv")
    first = records[0]
    assert (first.coin_id, first.symbol, first.name) == ("bitcoin", "BTC", "Bitcoin")
    assert first.observed_at == datetime(2013, 4, 28, tzinfo=UTC)
    assert first.price_usd == 134.21
    assert first.market_cap == 1_500_520_000
    assert len({r.coin_id for r in records}) == 44


def test_cryptodatadownload_uses_unix_time_and_usd_volume() -> None:
    """The pair symbol BTCUSD gives coin `btc`; `Volume USD` is used, never `Volume BTC`."""
    records, _ = load("csv_cryptodatadownload_Coinbase_BTCUSD_d.csv")
    newest = records[0]
    assert newest.observed_at == datetime(2020, 8, 29, tzinfo=UTC)
    assert newest.price_usd == 11514.42
    assert newest.volume_24h == 13505924.05
    assert newest.symbol == "BTC"


def test_coinmarketcap_snapshot_reads_unix_last_updated_and_ids() -> None:
    """The unnamed index column is ignored; id, price_usd and last_updated are used."""
    records, _ = load("csv_coinmarketcap_v1_ticker_snapshot_2017-12-06.csv")
    bitcoin = next(r for r in records if r.coin_id == "bitcoin")
    assert bitcoin.price_usd == 12739.5
    assert bitcoin.market_cap == 213049346738.0
    assert bitcoin.volume_24h == 9007640000.0
    assert bitcoin.observed_at == datetime.fromtimestamp(1512549554, UTC)


def test_coingecko_pandas_export_keeps_duplicate_symbols_apart() -> None:
    """Coins are keyed by CoinGecko id, so several coins with one symbol stay distinct."""
    records, _ = load("csv_coingecko_markets_pandas_export_250_2024-11-17.csv")
    bitcoin = next(r for r in records if r.coin_id == "bitcoin")
    assert bitcoin.price_usd == 90190.0
    assert bitcoin.volume_24h == 47781833544.0
    assert len(records) == len({r.coin_id for r in records}) == 250
    by_symbol = Counter((r.symbol or "").upper() for r in records)
    assert (by_symbol["WETH"], by_symbol["DOGE"], by_symbol["WBTC"]) == (6, 3, 3)
    weth = {r.coin_id for r in records if (r.symbol or "").upper() == "WETH"}
    assert len(weth) == 6  # six different coins, none merged into another


def test_excel_mangled_file_rejects_every_ambiguous_row_with_reasons() -> None:
    """Two-digit years and dot-grouped numbers are refused; no absurd price is produced."""
    records, rejected = load("csv_kaggle_coin_Bitcoin_EXCEL_MANGLED.csv")
    assert records == []
    assert len(rejected) == 2991
    line, reasons = rejected[0]
    assert line == 2
    text = "; ".join(reasons)
    assert "two-digit year" in text
    assert "several dots" in text
    assert all(any("two-digit year" in r for r in rs) for _, rs in rejected)


def test_unusable_header_is_rejected_listing_the_columns() -> None:
    """A header with no price, or no coin, fails the whole file and lists what it found."""
    with pytest.raises(CsvFileError, match=r"no price column.*'Date', 'Volume'"):
        map_header(["Date", "Volume"], "bitcoin.csv")
    with pytest.raises(CsvFileError, match=r"no coin column.*'Date', 'Close'"):
        map_header(["Date", "Close"], "prices.csv")


def test_header_matching_ignores_case_spaces_and_punctuation() -> None:
    """`MARKET CAP`, `Volume (USD)`, `Close ` map; `Volume BTC` is not a USD volume."""
    layout = map_header(["NAME", " Close ", "MARKET CAP", "Volume BTC", "Volume (USD)"], "x.csv")
    assert layout.name == "NAME"
    assert layout.price == " Close ".strip()
    assert layout.market_cap == "MARKET CAP"
    assert layout.volume == "Volume (USD)"
    assert map_header(["Symbol", "Close", "Volume BTC"], "x.csv").volume is None


def test_coin_from_file_name() -> None:
    """Only when no column names the coin: noise words are dropped from the file name."""
    assert coin_from_file_name("bitcoin_price.csv") == "bitcoin"
    assert coin_from_file_name("csv_kaggle_bitcoin_price_old_layout.csv") == "bitcoin"
    assert coin_from_file_name("ETH-USD daily 2021.csv") == "eth"
    assert coin_from_file_name("prices.csv") is None


def test_a_row_with_shifted_columns_is_refused() -> None:
    """An unquoted `9,926,540,000` shifts columns: the row is refused, not misread."""
    layout = map_header(["Name", "Date", "Close", "Volume"], "x.csv")
    assert row_payload(layout.keys, ["Bitcoin", "2018-02-20", "11403.7", "9", "926"]) == (
        "has 5 fields, the header has 4"
    )
    assert isinstance(row_payload(layout.keys, ["Bitcoin", "2018-02-20", "1", "2", ""]), dict)


def test_pairs_quoted_in_other_currencies_are_refused() -> None:
    """A symbol-only file of ETHBTC prices is not in USD: refused with a reason."""
    layout = map_header(["Date", "Symbol", "Close"], "x.csv")
    result = read_row(
        layout,
        {"Date": "2020-01-01", "Symbol": "ETHBTC", "Close": "0.02"},
        default_observed_at=MTIME,
        now=NOW,
    )
    assert result == ["pair 'ETHBTC' is quoted in BTC, not USD"]


def test_row_without_date_column_takes_the_file_time() -> None:
    """A file with no date column: observed_at is the file's modification time."""
    layout = map_header(["Name", "Close"], "x.csv")
    record = read_row(layout, {"Name": "Bitcoin", "Close": "5"}, default_observed_at=MTIME, now=NOW)
    assert isinstance(record, UnifiedRecord)
    assert record.observed_at == MTIME


def test_non_positive_price_is_refused() -> None:
    """A zero price is not a price."""
    layout = map_header(["Name", "Date", "Close"], "x.csv")
    row = {"Name": "Bitcoin", "Date": "2020-01-01", "Close": "0"}
    assert read_row(layout, row, default_observed_at=MTIME, now=NOW) == [
        "price '0' is not positive"
    ]
