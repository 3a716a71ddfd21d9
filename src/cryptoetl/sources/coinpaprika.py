"""CoinPaprika: one `/tickers?quotes=USD` call per run, split into batches of 1000 tickers.

Without a key requests go to api.coinpaprika.com (free plan); with COINPAPRIKA_API_KEY to
api-pro.coinpaprika.com with the key in the `Authorization` header, as the provider's OpenAPI
document shows it. COINPAPRIKA_BASE_URL replaces host and version path. The cursor is `{}`:
every run takes the whole list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator

from cryptoetl.config import SourceSettings, empty_is_unset
from cryptoetl.errors import BadPayloadError
from cryptoetl.models import Accepted, Batch, LocatorKind, Rejection, SourceRecord
from cryptoetl.sources.base import SourceContext, SourceInfo
from cryptoetl.sources.body import to_records
from cryptoetl.sources.http_client import Endpoint, HttpClient, session_for
from cryptoetl.transform import coinpaprika as transform_module

NAME = "coinpaprika"
HOSTS = {"free": "https://api.coinpaprika.com/v1", "pro": "https://api-pro.coinpaprika.com/v1"}
BATCH_SIZE = 1000
EMPTY = "/tickers answered an empty list; CoinPaprika always lists coins, so no data was loaded"
# CoinPaprika's plans are monthly quotas (free: 20,000 calls a month) with no per-minute figure;
# one call per run is what matters there, and the budget only spaces retries.
DEFAULT_BUDGET: dict[str, int] = {"free": 60, "pro": 600}


class CoinPaprikaSettings(SourceSettings):
    """CoinPaprika's settings (environment variables of the same names)."""

    coinpaprika_api_key: SecretStr | None = None
    coinpaprika_base_url: AnyHttpUrl | None = None
    coinpaprika_requests_per_minute: int | None = Field(default=None, ge=1, le=100_000)

    @field_validator("coinpaprika_api_key", "coinpaprika_base_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return empty_is_unset(value)

    def budget(self) -> int:
        """Requests per minute: the setting, else the plan's default."""
        if self.coinpaprika_requests_per_minute is not None:
            return self.coinpaprika_requests_per_minute
        return DEFAULT_BUDGET["free" if self.coinpaprika_api_key is None else "pro"]


def endpoint(settings: CoinPaprikaSettings) -> Endpoint:
    """The free host without a key, the pro host with the key in `Authorization`."""
    key = settings.coinpaprika_api_key.get_secret_value() if settings.coinpaprika_api_key else None
    base = settings.coinpaprika_base_url
    url = str(base) if base else HOSTS["pro" if key else "free"]
    headers = {"Authorization": key} if key else {}
    return Endpoint(base_url=url.rstrip("/"), headers=headers)


class CoinPaprika:
    """The CoinPaprika source (see the module docstring)."""

    info = SourceInfo(
        NAME, LocatorKind.OBSERVATION, match_rank=1, catalog=True, settings=CoinPaprikaSettings
    )

    def __init__(self, context: SourceContext, *, batch_size: int = BATCH_SIZE) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.context = context
        self.batch_size = batch_size

    async def fetch(self, cursor: Mapping[str, Any]) -> AsyncIterator[Batch]:
        """The whole ticker list, in batches of `batch_size`.

        `[]` is not an answer CoinPaprika gives while it works (it lists thousands of coins):
        it fails the fetch (`BadPayloadError`), so the run is `failed` saying so."""
        settings = self.context.settings.of(CoinPaprikaSettings)
        target = endpoint(settings)
        async with session_for(self.context) as session:
            client = HttpClient.for_source(
                self.context,
                session,
                NAME,
                per_minute=settings.budget(),
                key_setting="COINPAPRIKA_API_KEY",
                has_key=settings.coinpaprika_api_key is not None,
                key_statuses=(401, 403),
            )
            answer = await client.get_json(
                target.url("tickers"), params={"quotes": "USD"}, headers=target.headers
            )
        tickers: list[Any] = answer.data
        if not tickers:
            raise BadPayloadError(NAME, EMPTY, url=answer.meta.url)
        for start in range(0, len(tickers), self.batch_size):
            chunk = tickers[start : start + self.batch_size]
            label = f"tickers {start}-{start + len(chunk) - 1}"
            yield Batch(
                source=NAME,
                items=to_records(chunk, offset=start),
                meta=answer.meta,
                cursor={},
                label=label,
            )

    def transform(self, item: SourceRecord, batch: Batch) -> Accepted | Rejection:
        """See `cryptoetl.transform.coinpaprika`."""
        return transform_module.transform(item, batch)
