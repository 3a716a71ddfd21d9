"""The matcher and its identity rules, as pure functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cryptoetl.assets.identity import coin_keys, id_name, is_derivative, name_key, slug
from cryptoetl.assets.match import match
from cryptoetl.assets.overrides import load_overrides, parse_overrides
from cryptoetl.errors import AssetOverridesError
from cryptoetl.models import Asset, Coin, Decision, Method, Pin, Rule, spread_of
from tests.support.upstream import COINGECKO_PAGE_1, COINPAPRIKA_TICKERS


def by_coin(decisions: list[Decision]) -> dict[str, Decision]:
    return {f"{d.source}:{d.coin_id}": d for d in decisions}


def fixture_coins() -> list[Coin]:
    gecko = json.loads(COINGECKO_PAGE_1.read_text())
    paprika = json.loads(COINPAPRIKA_TICKERS.read_text())
    return [Coin("coingecko", c["id"], c["name"], c["symbol"]) for c in gecko] + [
        Coin("coinpaprika", c["id"], c["name"], c["symbol"]) for c in paprika
    ]


def test_name_keys_ignore_case_space_punctuation_and_accents() -> None:
    """`USD Coin`, `usd-coin` and `Usd_Coin` are one name; `Café` is `cafe`."""
    assert name_key("USD Coin") == name_key("usd-coin") == name_key("Usd_Coin") == "usdcoin"
    assert name_key("Café") == "cafe"
    assert slug("POL (ex-MATIC)") == "pol-ex-matic"
    assert id_name("coinpaprika", "btc-bitcoin", "BTC") == "bitcoin"
    assert id_name("coingecko", "btc-bitcoin", "BTC") == "btc-bitcoin"


def test_an_id_that_repeats_the_symbol_is_no_name() -> None:
    """A `BTCUSD` file's coin id `btc` gives no key; a real name equal to the symbol does."""
    assert coin_keys("csv", "btc", None, "BTC") == {}
    assert len(coin_keys("coingecko", "ripple", "XRP", "xrp")) == 2


@pytest.mark.parametrize(
    ("text", "derivative"),
    [
        ("Wrapped Bitcoin", True),
        ("WrappedBitcoin", True),
        ("Binance-Peg WETH", True),
        ("binance-peg-dogecoin", True),
        ("Mantle Bridged USDT (Mantle)", True),
        ("USDC (Wormhole)", True),
        ("Lido Staked Ether", True),
        ("Wormhole", False),  # the W token itself
        ("WETH", False),
        ("Bitcoin", False),
        ("Pegasus", False),
    ],
)
def test_derivative_markers(text: str, derivative: bool) -> None:
    """Wrapped, bridged, pegged and staked tokens are told by their names and ids."""
    assert is_derivative(text) is derivative


def test_the_same_coin_at_three_sources_is_one_new_asset() -> None:
    """Same symbol and name: one asset, named after CoinGecko's coin."""
    result = match(
        [
            Coin("csv", "bitcoin", "Bitcoin", "BTC"),
            Coin("coinpaprika", "btc-bitcoin", "Bitcoin", "BTC"),
            Coin("coingecko", "bitcoin", "Bitcoin", "btc"),
        ],
        [],
        {},
    )
    assert result.new_assets == [Asset("bitcoin", "BTC", "Bitcoin", False, Method.AUTO)]
    assert {d.asset_id for d in result.decisions} == {"bitcoin"}
    assert {d.rule for d in result.decisions} == {Rule.NAME_AND_SYMBOL}
    assert all(d.confidence == 0.9 for d in result.decisions)


def test_a_symbol_alone_never_merges() -> None:
    """Same symbol, different names: two assets; a coin with only a symbol: unmapped."""
    result = match(
        [
            Coin("coingecko", "tether", "Tether", "usdt"),
            Coin("coingecko", "mantle-bridged-usdt-mantle", "Mantle Bridged USDT (Mantle)", "usdt"),
            Coin("csv", "usdt", None, "USDT"),
        ],
        [],
        {},
    )
    decisions = by_coin(result.decisions)
    assert decisions["coingecko:tether"].asset_id == "tether"
    assert decisions["coingecko:mantle-bridged-usdt-mantle"].asset_id == (
        "mantle-bridged-usdt-mantle"
    )
    only_symbol = decisions["csv:usdt"]
    assert (only_symbol.asset_id, only_symbol.rule) == (None, Rule.SYMBOL_ONLY)
    assert "symbols are not unique" in only_symbol.reason


def test_the_same_name_with_another_symbol_is_another_asset() -> None:
    """Two `dYdX` coins with different symbols: two assets; the plain one gets the plain id."""
    result = match(
        [
            Coin("coingecko", "dydx", "dYdX", "ethdydx"),
            Coin("coingecko", "dydx-chain", "dYdX", "dydx"),
        ],
        [],
        {},
    )
    decisions = by_coin(result.decisions)
    assert decisions["coingecko:dydx-chain"].asset_id == "dydx"
    assert decisions["coingecko:dydx"].asset_id == "dydx-ethdydx"


def test_a_coin_without_symbol_stays_unmapped() -> None:
    """A name alone is not unique across symbols."""
    (decision,) = match([Coin("csv", "ardor", "Ardor", None)], [], {}).decisions
    assert (decision.asset_id, decision.rule, decision.confidence) == (None, Rule.NO_SYMBOL, 0.0)


def test_two_catalog_coins_with_one_identity_make_the_group_ambiguous() -> None:
    """Two CoinGecko ids named Tether/usdt: nobody can say which one CoinPaprika's is."""
    result = match(
        [
            Coin("coingecko", "tether", "Tether", "usdt"),
            Coin("coingecko", "tether-2", "Tether", "usdt"),
            Coin("coinpaprika", "usdt-tether", "Tether", "USDT"),
        ],
        [],
        {},
    )
    assert result.new_assets == []
    assert len(result.decisions) == 3  # every coin decided, none mapped
    for decision in result.decisions:
        assert (decision.asset_id, decision.rule) == (None, Rule.AMBIGUOUS)
        assert decision.evidence["candidates"] == ["coingecko:tether", "coingecko:tether-2"]
        assert "cannot be told" in decision.reason


def test_csv_coins_may_share_an_asset() -> None:
    """CSV coin ids are derived from files: two of them can be the same coin."""
    result = match(
        [Coin("csv", "bitcoin", "Bitcoin", "BTC"), Coin("csv", "btc-bitcoin", "Bitcoin", "BTC")],
        [],
        {},
    )
    assert {d.asset_id for d in result.decisions} == {"bitcoin"}


def test_a_group_touching_two_assets_is_ambiguous() -> None:
    """A coin whose name says one asset and whose id says another decides nothing."""
    assets = [
        Asset("foo", "X", "Foo", False, Method.AUTO),
        Asset("bar", "X", "Bar", False, Method.AUTO),
    ]
    (decision,) = match([Coin("csv", "foo", "Bar", "X")], assets, {}).decisions
    assert (decision.asset_id, decision.rule) == (None, Rule.AMBIGUOUS)
    assert decision.evidence["candidates"] == ["bar", "foo"]


def test_an_id_that_marks_a_wrapped_token_keeps_it_apart() -> None:
    """A row named `Bitcoin` whose id is `wrapped-bitcoin` does not join Bitcoin."""
    result = match(
        [
            Coin("coingecko", "bitcoin", "Bitcoin", "btc"),
            Coin("csv", "wrapped-bitcoin", "Bitcoin", "BTC"),
        ],
        [],
        {},
    )
    decisions = by_coin(result.decisions)
    assert decisions["csv:wrapped-bitcoin"].asset_id != decisions["coingecko:bitcoin"].asset_id
    derivative = next(a for a in result.new_assets if a.asset_id != "bitcoin")
    assert derivative.derivative is True


def test_ids_match_when_names_differ() -> None:
    """CoinGecko's `usd-coin` (named USDC) and CoinPaprika's `USD Coin`: one asset, by id."""
    result = match(
        [
            Coin("coingecko", "usd-coin", "USDC", "usdc"),
            Coin("coinpaprika", "usdc-usd-coin", "USD Coin", "USDC"),
        ],
        [],
        {},
    )
    decisions = by_coin(result.decisions)
    paprika = decisions["coinpaprika:usdc-usd-coin"]
    assert (paprika.asset_id, paprika.rule, paprika.confidence) == (
        "usdc",
        Rule.ID_AND_SYMBOL,
        0.75,
    )
    assert paprika.evidence == {"keys": ["usdc/usdcoin"], "with": ["coingecko:usd-coin"]}


def test_pins_win_and_leave_the_matching() -> None:
    """A pinned coin goes where the pin says; an admin pin beats a file pin; None unmaps."""
    coins = [
        Coin("coingecko", "bitcoin", "Bitcoin", "btc"),
        Coin("coinpaprika", "btc-bitcoin", "Bitcoin", "BTC"),
        Coin("csv", "btc", None, "BTC"),
        Coin("csv", "junk", "Bitcoin", "BTC"),
    ]
    assets = [Asset("bitcoin", "BTC", "Bitcoin", False, Method.FILE)]
    pins = {
        ("csv", "btc"): Pin("bitcoin", Method.FILE, "BTCUSD files"),
        ("csv", "junk"): Pin(None, Method.ADMIN, "not a coin"),
    }
    result = match(coins, assets, pins)
    decisions = by_coin(result.decisions)
    assert result.new_assets == []
    pinned = decisions["csv:btc"]
    assert (pinned.asset_id, pinned.rule, pinned.method) == ("bitcoin", Rule.PINNED, Method.FILE)
    assert pinned.reason == "pinned to bitcoin by file pin: BTCUSD files"
    junk = decisions["csv:junk"]
    assert (junk.asset_id, junk.rule, junk.method) == (None, Rule.PINNED_UNMAPPED, Method.ADMIN)
    # the file-declared asset is what the others match
    assert decisions["coingecko:bitcoin"].asset_id == "bitcoin"


def test_matching_is_idempotent_and_keeps_asset_ids() -> None:
    """The assets one call made are what the next call's coins match: same decisions."""
    coins = fixture_coins()
    first = match(coins, [], {})
    second = match(coins, first.new_assets, {})
    assert second.new_assets == []
    assert second.decisions == first.decisions
    more = [*coins, Coin("csv", "bitcoin", "Bitcoin", "BTC")]
    third = match(more, first.new_assets, {})
    assert third.new_assets == []
    assert by_coin(third.decisions)["csv:bitcoin"].asset_id == "bitcoin"


def test_the_real_pages_merge_majors_and_keep_lookalikes_apart() -> None:
    """On CoinGecko's and CoinPaprika's real lists: majors merge, every bridged copy is apart."""
    decisions = by_coin(match(fixture_coins(), [], {}).decisions)
    for gecko, paprika in [
        ("bitcoin", "btc-bitcoin"),
        ("ethereum", "eth-ethereum"),
        ("tether", "usdt-tether"),
        ("weth", "weth-weth"),
        ("wrapped-bitcoin", "wbtc-wrapped-bitcoin"),
        ("binancecoin", "bnb-binance-coin"),
        ("usd-coin", "usdc-usd-coin"),
    ]:
        assert (
            decisions[f"coingecko:{gecko}"].asset_id == decisions[f"coinpaprika:{paprika}"].asset_id
        )
    weth_assets = {
        decisions[f"coingecko:{coin}"].asset_id
        for coin in [
            "weth",
            "binance-peg-weth",
            "l2-standard-bridged-weth-base",
            "arbitrum-bridged-weth-arbitrum-one",
            "polygon-pos-bridged-weth-polygon-pos",
        ]
    }
    assert len(weth_assets) == 5
    assert (
        decisions["coingecko:wrapped-bitcoin"].asset_id != decisions["coingecko:bitcoin"].asset_id
    )
    assert all(d.asset_id is not None for d in decisions.values())


def test_the_shipped_overrides_file_is_valid() -> None:
    """Every pin of the shipped file names a declared asset."""
    overrides = load_overrides()
    declared = {asset.asset_id for asset in overrides.assets}
    assert {"bitcoin", "ethereum"} <= declared
    assert overrides.pins[("csv", "btc")].asset_id == "bitcoin"
    assert all(pin.method is Method.FILE for pin in overrides.pins.values())
    assert all(pin.asset_id in declared for pin in overrides.pins.values())


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not JSON"),
        ('{"pins": [{"source": "csv", "coin_id": "x", "asset_id": "nope"}]}', "does not declare"),
        ('{"assets": [{"asset_id": "Bad Id", "symbol": "X", "name": "X"}]}', "assets.0.asset_id"),
        ('{"pinz": []}', "pinz"),
        (
            '{"assets": [{"asset_id": "a", "symbol": "A", "name": "A"}], "pins": ['
            '{"source": "csv", "coin_id": "x", "asset_id": "a"},'
            '{"source": "csv", "coin_id": "x", "asset_id": null}]}',
            "pinned twice",
        ),
    ],
)
def test_a_broken_overrides_file_is_refused_with_the_place(text: str, problem: str) -> None:
    """Typos in the overrides file fail loudly, naming the entry."""
    with pytest.raises(AssetOverridesError) as raised:
        parse_overrides(text, "overrides.json")
    assert problem in str(raised.value)
    assert str(raised.value).startswith("asset overrides overrides.json: ")


def test_spread_is_max_minus_min_over_median() -> None:
    """Three prices: (max - min) / median in percent; with one source there is no spread."""
    t = datetime(2025, 1, 1, tzinfo=UTC)
    spread = spread_of([(100.0, t), (102.0, t + timedelta(seconds=30)), (99.0, t)])
    assert spread.percent == pytest.approx(3.0)
    assert (spread.min_price, spread.max_price, spread.median_price) == (99.0, 102.0, 100.0)
    assert (spread.compared, spread.observed_span_seconds) == (3, 30.0)
    two = spread_of([(100.0, t), (110.0, t)])
    assert two.percent == pytest.approx(10 / 105 * 100)
    one = spread_of([(100.0, t)])
    assert (one.percent, one.compared, one.observed_span_seconds) == (None, 1, None)
    assert spread_of([]).compared == 0
