"""CoinGecko: `/coins/markets` in pages of 250 coins, one batch per page, resumable per cycle.

Hosts and headers: no key, or a demo key (`x-cg-demo-api-key`), go to api.coingecko.com; a
pro key (`x-cg-pro-api-key`) to pro-api.coingecko.com. COINGECKO_BASE_URL replaces the host and
version path (e.g. `http://127.0.0.1:9000/api/v3`).

The cursor committed with each batch: `{"cycle_started_at": iso, "next_page": p + 1 | None,
"pages": N}`. A run resumes at `next_page` while that cycle is current (same COINGECKO_PAGES,
started less than ETL_INTERVAL_SECONDS ago); otherwise it starts a new cycle at page 1. A page
with fewer than 250 coins is the last one of the cycle. A resumed run whose first page answers
an empty list finds that cycle already ended (its last page was full): it starts a new cycle at
page 1 instead of recording a run that loaded nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator

from cryptoetl.config import SourceSettings, empty_is_unset
from cryptoetl.errors import BadPayloadError
from cryptoetl.models import Accepted, Batch, LocatorKind, Rejection, SourceRecord
from cryptoetl.sources.base import SourceContext, SourceInfo
from cryptoetl.sources.body import to_records
from cryptoetl.sources.http_client import Endpoint, HttpClient, session_for
from cryptoetl.transform import coingecko as transform_module

NAME = "coingecko"
PER_PAGE = 250
# Page 1 of the market list always has coins while CoinGecko works; `[]` there is a fault.
EMPTY = "page 1 of /coins/markets answered an empty list; no data was loaded"
HOSTS = {
    "demo": "https://api.coingecko.com/api/v3",
    "pro": "https://pro-api.coingecko.com/api/v3",
}
KEY_HEADERS = {"demo": "x-cg-demo-api-key", "pro": "x-cg-pro-api-key"}
# Request budgets (requests per minute) when the operator sets none, from the provider's docs:
# keyless calls are limited per IP (5-15/min in its older docs, shared with everyone behind that
# IP); the demo plan has been documented at 30/min (newer pages say 100: 30 stays safe under
# both); a pro key can be any paid plan, the smallest of which (Basic) allows 250/min, so a
# bigger plan sets COINGECKO_REQUESTS_PER_MINUTE.
DEFAULT_BUDGET: dict[str, int] = {"keyless": 10, "demo": 30, "pro": 250}


class CoinGeckoSettings(SourceSettings):
    """CoinGecko's settings (environment variables of the same names)."""

    coingecko_api_key: SecretStr | None = None
    coingecko_api_plan: Literal["demo", "pro"] = "demo"
    coingecko_base_url: AnyHttpUrl | None = None
    coingecko_pages: int = Field(default=4, ge=1, le=100)
    coingecko_requests_per_minute: int | None = Field(default=None, ge=1, le=100_000)

    @field_validator("coingecko_api_key", "coingecko_base_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return empty_is_unset(value)

    @field_validator("coingecko_api_plan", mode="before")
    @classmethod
    def _lower_plan(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    def budget(self) -> int:
        """Requests per minute: the setting, else the plan's documented rate."""
        if self.coingecko_requests_per_minute is not None:
            return self.coingecko_requests_per_minute
        if self.coingecko_api_key is None:
            return DEFAULT_BUDGET["keyless"]
        return DEFAULT_BUDGET[self.coingecko_api_plan]


def endpoint(settings: CoinGeckoSettings) -> Endpoint:
    """The plan's host and key header; keyless requests go to the public (demo) host."""
    key = settings.coingecko_api_key.get_secret_value() if settings.coingecko_api_key else None
    plan = settings.coingecko_api_plan if key else "demo"
    base = str(settings.coingecko_base_url) if settings.coingecko_base_url else HOSTS[plan]
    headers = {KEY_HEADERS[plan]: key} if key else {}
    return Endpoint(base_url=base.rstrip("/"), headers=headers)


def page_params(page: int) -> dict[str, str]:
    """The query of one `/coins/markets` page: USD, by market cap, full precision."""
    return {
        "vs_currency": "usd",
        "order": "market_cap_desc",
        "per_page": str(PER_PAGE),
        "page": str(page),
        "precision": "full",
    }


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def resume_point(
    cursor: Mapping[str, Any], pages: int, now: datetime, interval_seconds: int
) -> tuple[int, datetime]:
    """(first page to fetch, start of its cycle) from the last committed cursor."""
    next_page = cursor.get("next_page")
    started = _parse_time(cursor.get("cycle_started_at"))
    current = (
        isinstance(next_page, int)
        and not isinstance(next_page, bool)
        and 1 <= next_page <= pages
        and cursor.get("pages") == pages
        and started is not None
        and timedelta(0) <= now - started < timedelta(seconds=interval_seconds)
    )
    if current and started is not None and isinstance(next_page, int):
        return next_page, started
    return 1, now


class CoinGecko:
    """The CoinGecko source (see the module docstring)."""

    info = SourceInfo(
        NAME, LocatorKind.OBSERVATION, match_rank=0, catalog=True, settings=CoinGeckoSettings
    )

    def __init__(self, context: SourceContext) -> None:
        self.context = context

    async def fetch(self, cursor: Mapping[str, Any]) -> AsyncIterator[Batch]:
        """One batch per page from the resume point to the end of the cycle."""
        settings = self.context.settings.of(CoinGeckoSettings)
        target = endpoint(settings)
        pages = settings.coingecko_pages
        first, started = resume_point(
            cursor, pages, self.context.now(), self.context.settings.etl_interval_seconds
        )
        async with session_for(self.context) as session:
            client = HttpClient.for_source(
                self.context,
                session,
                NAME,
                per_minute=settings.budget(),
                key_setting="COINGECKO_API_KEY",
                has_key=settings.coingecko_api_key is not None,
                key_statuses=(401,),
            )
            page = first
            while page <= pages:
                answer = await client.get_json(
                    target.url("coins/markets"),
                    params=page_params(page),
                    headers=target.headers,
                    expect=list,
                )
                if not answer.data and page == first > 1:
                    # the cycle this run resumed had ended already (its last page was full,
                    # then the run stopped): a new cycle starts, not a run that loads nothing
                    page = first = 1
                    started = self.context.now()
                    continue
                if page == 1 and not answer.data:
                    raise BadPayloadError(NAME, EMPTY, url=answer.meta.url)
                last = page >= pages or len(answer.data) < PER_PAGE
                yield Batch(
                    source=NAME,
                    items=to_records(answer.data),
                    meta=answer.meta,
                    cursor={
                        "cycle_started_at": started.isoformat(),
                        "next_page": None if last else page + 1,
                        "pages": pages,
                    },
                    label=f"page {page}",
                    context={"page": page},
                )
                if last:
                    return
                page += 1

    def transform(self, item: SourceRecord, batch: Batch) -> Accepted | Rejection:
        """See `cryptoetl.transform.coingecko`."""
        return transform_module.transform(item, batch)
