"""cryptoetl: a PostgreSQL history of crypto market data, kept fresh and served over REST."""

__version__ = "0.1.0"
