"""The shipped asset overrides file (`cryptoetl/assets/overrides.json`): read and checked.

    {
      "assets": [{"asset_id": "bitcoin", "symbol": "BTC", "name": "Bitcoin"}, ...],
      "pins": [{"source": "csv", "coin_id": "btc", "asset_id": "bitcoin", "note": "..."}, ...]
    }

`assets` declares assets (created when missing; an existing asset keeps its row); each pin ties
one `(source, coin_id)` to a declared asset, or to none (`"asset_id": null`: keep that coin
unmapped). A file that breaks a rule (an unknown asset, a pin given twice, a bad id) raises
`AssetOverridesError` naming the entry, so a typo fails the tests, not a production run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cryptoetl.assets.identity import is_derivative
from cryptoetl.errors import AssetOverridesError
from cryptoetl.models import Asset, Method, Pin

ASSET_ID = r"^[a-z0-9]+(-[a-z0-9]+)*$"


class _Asset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    asset_id: str = Field(pattern=ASSET_ID, max_length=100)
    symbol: str = Field(min_length=1, max_length=50)
    name: str = Field(min_length=1, max_length=200)
    derivative: bool | None = None


class _Pin(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, max_length=100)
    coin_id: str = Field(min_length=1, max_length=500)
    asset_id: str | None
    note: str | None = Field(default=None, max_length=500)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    about: str | None = None
    assets: list[_Asset] = Field(default_factory=list)
    pins: list[_Pin] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Overrides:
    """The declared assets and the pins by `(source, coin_id)`, all of origin `file`."""

    assets: tuple[Asset, ...]
    pins: dict[tuple[str, str], Pin]


def default_path() -> Path:
    return Path(str(resources.files("cryptoetl") / "assets" / "overrides.json"))


def parse_overrides(text: str, where: str) -> Overrides:
    """Overrides from the file's text; `where` names the file in errors."""
    try:
        parsed = _File.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise AssetOverridesError(where, f"not JSON: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(part) for part in first["loc"])
        raise AssetOverridesError(where, f"{place}: {first['msg']}") from None
    assets: dict[str, Asset] = {}
    for entry in parsed.assets:
        if entry.asset_id in assets:
            raise AssetOverridesError(where, f"asset {entry.asset_id!r} is declared twice")
        derivative = is_derivative(entry.name) if entry.derivative is None else entry.derivative
        assets[entry.asset_id] = Asset(
            entry.asset_id, entry.symbol, entry.name, derivative, Method.FILE
        )
    pins: dict[tuple[str, str], Pin] = {}
    for pin in parsed.pins:
        key = (pin.source, pin.coin_id)
        if key in pins:
            raise AssetOverridesError(where, f"{pin.source}:{pin.coin_id} is pinned twice")
        if pin.asset_id is not None and pin.asset_id not in assets:
            raise AssetOverridesError(
                where,
                f"{pin.source}:{pin.coin_id} is pinned to {pin.asset_id!r}, which the file's "
                "`assets` does not declare",
            )
        pins[key] = Pin(pin.asset_id, Method.FILE, pin.note)
    return Overrides(tuple(assets.values()), pins)


def load_overrides(path: Path | None = None) -> Overrides:
    """The overrides in `path` (default: the shipped file)."""
    path = path or default_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AssetOverridesError(str(path), exc.strerror or str(exc)) from None
    return parse_overrides(text, str(path))
