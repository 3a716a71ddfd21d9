"""The sources and their registry: adding a source is one module and one line in REGISTRY.

`load_settings()` reads the service's settings together with every registered source's own
(`cryptoetl.config.read_settings`); it is what the CLI and the tests call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptoetl.config import Settings, read_settings
from cryptoetl.sources.coingecko import CoinGecko
from cryptoetl.sources.coinpaprika import CoinPaprika
from cryptoetl.sources.csv_source import CsvSource
from cryptoetl.sources.registry import Registry

REGISTRY = Registry(CoinPaprika, CoinGecko, CsvSource)


def load_settings(
    env_file: str | Path | None = ".env", *, registry: Registry = REGISTRY, **overrides: Any
) -> Settings:
    """The settings of the service and of every source of `registry` (see `read_settings`)."""
    return read_settings(env_file, sources=registry.settings_classes(), **overrides)
