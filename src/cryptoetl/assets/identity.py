"""What a coin's name, symbol and id say about which asset it is. Pure text rules, no I/O.

A coin's identity keys are `(symbol, name key, derivative)` triples:

- symbol: the coin's symbol, stripped and lower-cased. A coin without one has no key at all:
  the same name is used by coins with different symbols (two `dYdX` on one CoinGecko page);
- name key: a name without case, accents, spaces or punctuation (`USD Coin` -> `usdcoin`),
  from the coin's name and from its id (CoinGecko's id, CoinPaprika's id without its symbol
  prefix, a CSV coin id). An id that merely repeats the symbol (`btc`, from a `BTCUSD` pair)
  says nothing about the name and gives no key, so a coin known only by its symbol has none;
- derivative: whether the coin's name or id marks it as a wrapped, bridged, pegged or staked
  token (an asset carries the flag of the coins it was made from). Keys meet only keys with
  the same flag, so a coin whose id says `wrapped-bitcoin` never joins Bitcoin, even if its
  name column says `Bitcoin`.

Two coins are candidates for one asset only when they share a key: the same symbol and the
same name key. A symbol alone never merges anything.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

# Words that mark a token as a version of another asset (`Wrapped Bitcoin`, `Binance-Peg
# WETH`, `USDC (Wormhole)`, `Arbitrum Bridged WBTC`, `Lido Staked Ether`).
DERIVATIVE_WORDS = frozenset(
    ["wrapped", "bridged", "bridge", "peg", "pegged", "wormhole", "staked", "restaked"]
)
# The same markers inside a run-together name (`WrappedBitcoin`, `binancepegdogecoin`).
DERIVATIVE_PARTS = ("wrapped", "bridged", "binancepeg", "wormhole", "restaked")

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


class KeyKind(StrEnum):
    """Where a key came from: the coin's name, or its id."""

    NAME = "name"
    ID = "id"


@dataclass(frozen=True, slots=True, order=True)
class IdentityKey:
    symbol: str
    name: str
    derivative: bool

    def describe(self) -> str:
        flag = ", derivative" if self.derivative else ""
        return f"{self.symbol}/{self.name}{flag}"


def fold(text: str) -> str:
    """Lower-case ASCII: accents dropped (`Café` -> `cafe`), characters with no ASCII form
    dropped, everything else kept."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def name_key(text: str | None) -> str:
    """`USD Coin` -> `usdcoin`; `usd-coin` -> `usdcoin`; '' when nothing is left."""
    if not text:
        return ""
    return _NON_ALNUM.sub("", fold(text))


def symbol_key(symbol: str | None) -> str:
    """`BTC ` -> `btc`; '' for no symbol."""
    return (symbol or "").strip().lower()


def slug(text: str | None) -> str:
    """`Bitcoin Cash` -> `bitcoin-cash`, `POL (ex-MATIC)` -> `pol-ex-matic`: an asset id."""
    return _NON_ALNUM.sub("-", fold(text or "")).strip("-")


def is_derivative(text: str | None) -> bool:
    """Whether a name or id marks a wrapped, bridged, pegged or staked token."""
    words = [w for w in _NON_ALNUM.split(fold(text or "")) if w]
    if len(words) == 1 and words[0] in DERIVATIVE_WORDS:
        return False  # the word is the name itself (the `Wormhole` token), not a marker
    if DERIVATIVE_WORDS.intersection(words):
        return True
    squashed = "".join(words)
    return any(part in squashed and part != squashed for part in DERIVATIVE_PARTS)


def id_name(source: str, coin_id: str, symbol: str | None) -> str:
    """The part of a coin id that names the coin: CoinPaprika's `btc-bitcoin` -> `bitcoin`
    (its ids are `<symbol>-<name>`); every other id as it is."""
    if source == "coinpaprika":
        prefix = f"{symbol_key(symbol)}-"
        if len(prefix) > 1 and coin_id.lower().startswith(prefix) and len(coin_id) > len(prefix):
            return coin_id[len(prefix) :]
    return coin_id


def identity_keys(
    symbol: str | None, texts: list[tuple[str | None, KeyKind]], derivative: bool
) -> dict[IdentityKey, KeyKind]:
    """The keys of something with this symbol and these names/ids; a key found in a name is
    `NAME` even when an id gives it too. Empty without a symbol."""
    sym = symbol_key(symbol)
    if not sym:
        return {}
    keys: dict[IdentityKey, KeyKind] = {}
    for text, kind in texts:
        key_name = name_key(text)
        if not key_name or (kind is KeyKind.ID and key_name == name_key(sym)):
            continue  # nothing, or an id that only repeats the symbol
        key = IdentityKey(sym, key_name, derivative)
        if keys.get(key) is not KeyKind.NAME:
            keys[key] = kind
    return keys


def coin_is_derivative(source: str, coin_id: str, name: str | None, symbol: str | None) -> bool:
    """Whether the coin's name or its id marks it as a wrapped, bridged, pegged or staked token."""
    return is_derivative(name) or is_derivative(id_name(source, coin_id, symbol))


def coin_keys(
    source: str, coin_id: str, name: str | None, symbol: str | None
) -> dict[IdentityKey, KeyKind]:
    """A coin's identity keys, from its name and its id."""
    return identity_keys(
        symbol,
        [(name, KeyKind.NAME), (id_name(source, coin_id, symbol), KeyKind.ID)],
        coin_is_derivative(source, coin_id, name, symbol),
    )


def asset_keys(
    asset_id: str, name: str, symbol: str, derivative: bool
) -> dict[IdentityKey, KeyKind]:
    """An asset's identity keys, from its name and its id (a slug of a name)."""
    return identity_keys(symbol, [(name, KeyKind.NAME), (asset_id, KeyKind.ID)], derivative)
