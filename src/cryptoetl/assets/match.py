"""The matcher: every known coin, asset and pin in, one decision per coin out. Pure: no I/O.

    result = match(coins, assets, pins)
    result.decisions    # one per coin: its asset (or None) and how that was decided
    result.new_assets   # the assets this call made up for coins that match none

How a coin is decided, in order:

1. pinned by an operator (the overrides file, or the admin API, which wins over the file):
   the pin decides, to an asset or to "unmapped"; pinned coins take no part in what follows;
2. no symbol: unmapped (`no_symbol`): names are not unique across symbols;
3. a symbol but no name (its id only repeats the symbol, e.g. a `BTCUSD` file): unmapped
   (`symbol_only`): symbols are not unique either (several `usdt` coins exist);
4. otherwise the coin joins every coin and every asset it shares an identity key with (the
   same symbol and the same name, see `identity`), transitively. Each such group is either
   - ambiguous, and every coin of it stays unmapped (`ambiguous`, with the candidates): it
     holds two coins of one catalog source (CoinGecko and CoinPaprika give each coin one id,
     so two ids with one identity mean the identity cannot tell them apart), or it touches
     two different assets;
   - or mapped to the one asset it touches, or to a new asset made from its best-known coin
     (CoinGecko's, else CoinPaprika's, else the CSV's): id = a slug of its name, made unique
     with the symbol (`dydx`, `dydx-ethdydx`) and a number if need be.

Each mapped coin's rule says what it shares with its asset or the rest of its group: a name and
the symbol (`name_and_symbol`, confidence 0.9) or only an id and the symbol (`id_and_symbol`,
`usd-coin` at CoinGecko and `USD Coin` at CoinPaprika; confidence 0.75). Asset ids, once made,
never change: the same inputs give the same decisions, and an asset made by one call is what
the next call's coins match (the matcher is idempotent).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptoetl.assets.identity import (
    IdentityKey,
    KeyKind,
    asset_keys,
    coin_is_derivative,
    coin_keys,
    id_name,
    slug,
    symbol_key,
)
from cryptoetl.models import Asset, Coin, Decision, Method, Pin, Rule
from cryptoetl.sources import REGISTRY
from cryptoetl.sources.registry import Registry


@dataclass(frozen=True, slots=True)
class MatchResult:
    decisions: list[Decision]
    new_assets: list[Asset]


@dataclass
class _Node:
    """A coin or an asset in the key graph."""

    keys: dict[IdentityKey, KeyKind]
    coin: Coin | None = None
    asset: Asset | None = None


CoinOrder = Callable[[Coin], tuple[int, bool, str, str]]


def _coin_order(registry: Registry) -> CoinOrder:
    """Best-known coin first: by its source's `match_rank`, a coin with a name before one
    without, then by source and id (a source the registry does not know ranks last)."""
    last = max((cls.info.match_rank for cls in registry), default=0) + 1

    def order(coin: Coin) -> tuple[int, bool, str, str]:
        info = registry.info(coin.source)
        rank = info.match_rank if info is not None else last
        return (rank, coin.name is None, coin.source, coin.coin_id)

    return order


class _Groups:
    """Union-find over node indexes."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _components(nodes: Sequence[_Node]) -> list[list[_Node]]:
    groups = _Groups(len(nodes))
    owner: dict[IdentityKey, int] = {}
    for index, node in enumerate(nodes):
        for key in node.keys:
            if key in owner:
                groups.union(index, owner[key])
            else:
                owner[key] = index
    members: dict[int, list[_Node]] = defaultdict(list)
    for index, node in enumerate(nodes):
        members[groups.find(index)].append(node)
    return [members[root] for root in sorted(members)]


def _pinned(coin: Coin, pin: Pin) -> Decision:
    note = f": {pin.note}" if pin.note else ""
    if pin.asset_id is None:
        return Decision(
            coin.source,
            coin.coin_id,
            None,
            Rule.PINNED_UNMAPPED,
            pin.method,
            f"kept unmapped by {pin.method.value} pin{note}",
            {"note": pin.note},
        )
    return Decision(
        coin.source,
        coin.coin_id,
        pin.asset_id,
        Rule.PINNED,
        pin.method,
        f"pinned to {pin.asset_id} by {pin.method.value} pin{note}",
        {"note": pin.note},
    )


def _unmapped(coin: Coin, rule: Rule, reason: str, **evidence: Any) -> Decision:
    return Decision(coin.source, coin.coin_id, None, rule, Method.AUTO, reason, evidence)


def _conflict(
    coins: Sequence[Coin], assets: Sequence[Asset], registry: Registry
) -> tuple[str, dict[str, Any]] | None:
    """Why a group cannot be one asset, or None."""
    by_source: dict[str, list[str]] = defaultdict(list)
    for coin in coins:
        info = registry.info(coin.source)
        if info is not None and info.catalog:
            by_source[coin.source].append(coin.coin_id)
    for source, ids in sorted(by_source.items()):
        if len(ids) > 1:
            reason = (
                f"ambiguous: {len(ids)} {source} coins share this symbol and name "
                f"({', '.join(sorted(ids))}); which one is meant cannot be told"
            )
            return reason, {"candidates": [f"{source}:{i}" for i in sorted(ids)]}
    if len(assets) > 1:
        ids = sorted(asset.asset_id for asset in assets)
        reason = f"ambiguous: matches {len(ids)} assets ({', '.join(ids)})"
        return reason, {"candidates": ids}
    return None


def _new_asset(coins: Sequence[Coin], taken: set[str], order: CoinOrder) -> Asset:
    """An asset for a group that matches none: the best-known coin's name and symbol."""
    best = min(coins, key=order)
    symbol = (best.symbol or "").strip().upper()
    name = (best.name or "").strip() or id_name(best.source, best.coin_id, best.symbol)
    base = slug(name) or slug(symbol) or "asset"
    candidates = [base, f"{base}-{slug(symbol)}" if slug(symbol) else base]
    asset_id = next((c for c in candidates if c not in taken), None)
    number = 2
    while asset_id is None:
        candidate = f"{candidates[-1]}-{number}"
        asset_id = candidate if candidate not in taken else None
        number += 1
    taken.add(asset_id)
    derivative = coin_is_derivative(best.source, best.coin_id, best.name, best.symbol)
    return Asset(asset_id, symbol, name, derivative, Method.AUTO)


def _mint_order(
    coins: Sequence[Coin], order: CoinOrder
) -> tuple[bool, int, tuple[int, bool, str, str]]:
    """Who gets a contested id first: a group whose symbol is its name (`dydx`/`dYdX`), then the
    bigger group, then the best-known coin."""
    best = min(coins, key=order)
    plain = slug(best.name) == slug(best.symbol)
    return (not plain, -len(coins), order(best))


def _decide(component: Sequence[_Node], asset: Asset) -> list[Decision]:
    """Every coin of `component` mapped to `asset`, each with what ties it to the asset or to
    the rest of its group."""
    anchor = _Node(
        asset_keys(asset.asset_id, asset.name, asset.symbol, asset.derivative), asset=asset
    )
    coins = [node for node in component if node.coin is not None]
    return [
        _mapped(node.coin, node, [anchor, *(c for c in coins if c is not node)], asset)
        for node in coins
        if node.coin is not None
    ]


def _mapped(coin: Coin, node: _Node, others: Iterable[_Node], asset: Asset) -> Decision:
    shared: dict[IdentityKey, bool] = {}  # key -> shared by a name on both sides
    refs: set[str] = set()
    for other in others:
        common = node.keys.keys() & other.keys.keys()
        if not common:
            continue
        refs.add(other.coin.ref if other.coin is not None else f"asset:{asset.asset_id}")
        for key in common:
            by_name = node.keys[key] is KeyKind.NAME and other.keys[key] is KeyKind.NAME
            shared[key] = shared.get(key, False) or by_name
    rule = Rule.NAME_AND_SYMBOL if any(shared.values()) else Rule.ID_AND_SYMBOL
    what = "name and symbol" if rule is Rule.NAME_AND_SYMBOL else "id and symbol"
    reason = f"{what} match {', '.join(sorted(refs))}"
    evidence = {"keys": sorted(key.describe() for key in shared), "with": sorted(refs)}
    return Decision(coin.source, coin.coin_id, asset.asset_id, rule, Method.AUTO, reason, evidence)


def _candidates(
    coins: Iterable[Coin], pins: Mapping[tuple[str, str], Pin], order: CoinOrder
) -> tuple[list[Decision], list[_Node]]:
    """Decisions for pinned and unmatchable coins; a key-graph node for each of the others."""
    decisions: list[Decision] = []
    nodes: list[_Node] = []
    for coin in sorted(coins, key=order):
        pin = pins.get((coin.source, coin.coin_id))
        if pin is not None:
            decisions.append(_pinned(coin, pin))
            continue
        if not symbol_key(coin.symbol):
            decisions.append(
                _unmapped(coin, Rule.NO_SYMBOL, "no symbol: a name alone is not unique")
            )
            continue
        keys = coin_keys(coin.source, coin.coin_id, coin.name, coin.symbol)
        if keys:
            nodes.append(_Node(keys, coin=coin))
        else:
            reason = f"only a symbol ({coin.symbol}), no name: symbols are not unique"
            decisions.append(_unmapped(coin, Rule.SYMBOL_ONLY, reason))
    return decisions, nodes


def match(
    coins: Iterable[Coin],
    assets: Iterable[Asset],
    pins: Mapping[tuple[str, str], Pin],
    *,
    registry: Registry = REGISTRY,
) -> MatchResult:
    """One decision per coin (ordered by source and coin id) and the assets made on the way.
    What a source weighs (its rank, whether its ids are a catalog) comes from `registry`."""
    order = _coin_order(registry)
    decisions, nodes = _candidates(coins, pins, order)
    known = sorted(assets, key=lambda asset: asset.asset_id)
    nodes.extend(
        _Node(asset_keys(a.asset_id, a.name, a.symbol, a.derivative), asset=a) for a in known
    )
    to_mint: list[list[_Node]] = []
    for component in _components(nodes):
        group = [node.coin for node in component if node.coin is not None]
        if not group:
            continue
        anchors = [node.asset for node in component if node.asset is not None]
        conflict = _conflict(group, anchors, registry)
        if conflict is not None:
            reason, evidence = conflict
            decisions.extend(_unmapped(c, Rule.AMBIGUOUS, reason, **evidence) for c in group)
        elif anchors:
            decisions.extend(_decide(component, anchors[0]))
        else:
            to_mint.append(component)
    taken = {asset.asset_id for asset in known}
    new_assets: list[Asset] = []
    for component in sorted(to_mint, key=lambda nodes: _mint_order(_coins(nodes), order)):
        asset = _new_asset(_coins(component), taken, order)
        new_assets.append(asset)
        decisions.extend(_decide(component, asset))
    decisions.sort(key=lambda d: (d.source, d.coin_id))
    return MatchResult(decisions, new_assets)


def _coins(nodes: Iterable[_Node]) -> list[Coin]:
    return [node.coin for node in nodes if node.coin is not None]
