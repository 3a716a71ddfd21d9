"""The sources and their registry: adding a source is one module and one line in REGISTRY."""

from __future__ import annotations

from cryptoetl.sources.base import SourceFactory
from cryptoetl.sources.coingecko import CoinGecko
from cryptoetl.sources.coinpaprika import CoinPaprika
from cryptoetl.sources.csv import CsvSource

REGISTRY: dict[str, SourceFactory] = {
    "coingecko": CoinGecko,
    "coinpaprika": CoinPaprika,
    "csv": CsvSource,
}
