"""The HTTP side of the sources: one shared session, paced and retried requests for JSON.

    async with open_http_session(settings) as session:           # one per run (pipeline)
        client = HttpClient("coingecko", session, settings, bucket=..., events=..., now=...)
        answer = await client.get_json(url, params=..., headers=..., expect=list)

`get_json` takes a token from the source's bucket before every attempt, retries transient
failures (see `cryptoetl.sources.retry`) and raises:

- `UpstreamRejectedError` at once for any other 4xx, with the upstream's own message
  (401/403: the key was rejected, or one is needed);
- `BadPayloadError` when the answer is not the JSON promised (not retried: HTML with a 200,
  a byte order mark, truncated or wrongly shaped JSON are not going to fix themselves);
- `RetriesExhaustedError` when a transient failure outlives MAX_RETRIES retries, or when the
  upstream's Retry-After is longer than MAX_RETRY_DELAY (the next run will try again).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import structlog

from cryptoetl import __version__
from cryptoetl.config import Settings
from cryptoetl.errors import (
    RetriesExhaustedError,
    SourceError,
    TransientSourceError,
    UpstreamRejectedError,
)
from cryptoetl.log import SecretMasker
from cryptoetl.models import ResponseMeta
from cryptoetl.sources.base import SourceContext, SourceEvents
from cryptoetl.sources.body import decode_json, display_url, upstream_reason
from cryptoetl.sources.ratelimit import TokenBucket
from cryptoetl.sources.retry import (
    backoff_delay,
    is_transient_status,
    parse_retry_after,
    status_text,
)

log = structlog.get_logger(__name__)

USER_AGENT = f"cryptoetl/{__version__}"
KEPT_HEADERS = (
    "Date",
    "Age",
    "Cache-Control",
    "Content-Type",
    "ETag",
    "Last-Modified",
    "Retry-After",
    "X-Request-Id",
    "CF-Cache-Status",
)
# Bodies larger than this are parsed in a worker thread so the API stays responsive.
THREAD_PARSE_BYTES = 1_000_000


def client_timeout(settings: Settings) -> aiohttp.ClientTimeout:
    """Connect and read timeouts from the settings; no total cap (a slow large body is fine)."""
    return aiohttp.ClientTimeout(
        total=None,
        sock_connect=settings.http_connect_timeout,
        sock_read=settings.http_read_timeout,
    )


@asynccontextmanager
async def open_http_session(settings: Settings) -> AsyncIterator[aiohttp.ClientSession]:
    """One `aiohttp.ClientSession` for a run, with the settings' timeouts; closed on exit."""
    connector = aiohttp.TCPConnector(limit=32, ttl_dns_cache=300)
    async with aiohttp.ClientSession(
        timeout=client_timeout(settings),
        connector=connector,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
    ) as session:
        yield session


@asynccontextmanager
async def session_for(context: SourceContext) -> AsyncIterator[aiohttp.ClientSession]:
    """The run's shared session, or (a source used on its own) a session of its own."""
    if context.session is not None:
        yield context.session
        return
    async with open_http_session(context.settings) as session:
        yield session


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a source sends its requests: base URL (with the API version path) and headers."""

    base_url: str
    headers: Mapping[str, str]

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}/{path.lstrip('/')}"


@dataclass(frozen=True, slots=True)
class JsonAnswer:
    """A successful answer: the parsed JSON and how it was obtained."""

    data: Any
    meta: ResponseMeta


def _retry_reason(error: TransientSourceError) -> str:
    if error.status is not None:
        return str(error.status)
    return "timeout" if error.message.startswith("timed out") else "connection"


class HttpClient:
    """Paced, retried GETs of JSON for one source."""

    @classmethod
    def for_source(
        cls,
        context: SourceContext,
        session: aiohttp.ClientSession,
        source: str,
        *,
        per_minute: int,
        key_setting: str,
        has_key: bool,
        key_statuses: Collection[int],
        background: bool = False,
    ) -> HttpClient:
        """The client of `source` in a run: its bucket, the run's events and clock.

        `background`: its requests yield the bucket to any other waiting (a backfill's do).
        """
        return cls(
            source,
            session,
            context.settings,
            bucket=context.bucket(source, per_minute),
            events=context.events,
            now=context.now,
            secrets=context.settings.secrets(),
            key_setting=key_setting,
            has_key=has_key,
            key_statuses=key_statuses,
            background=background,
        )

    def __init__(
        self,
        source: str,
        session: aiohttp.ClientSession,
        settings: Settings,
        *,
        bucket: TokenBucket,
        events: SourceEvents,
        now: Callable[[], datetime],
        secrets: Iterable[str] = (),
        key_setting: str | None = None,
        has_key: bool = False,
        key_statuses: Collection[int] = (401, 403),
        background: bool = False,
    ) -> None:
        self.source = source
        self.session = session
        self.settings = settings
        self.bucket = bucket
        self.events = events
        self.now = now
        self.scrub = SecretMasker(secrets).mask_text
        self.key_setting = key_setting
        self.has_key = has_key
        self.key_statuses = frozenset(key_statuses)
        self.background = background

    async def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        expect: type[list[Any]] | type[dict[str, Any]] = list,
    ) -> JsonAnswer:
        """GET `url` and return its JSON body; see the module docstring for what it raises."""
        shown = display_url(url, params, self.scrub)
        retries = 0
        while True:
            waited = await self.bucket.acquire(background=self.background)
            if waited > 0.001:
                self.events.rate_limit_wait(self.source, waited)
            try:
                return await self._attempt(url, shown, params, headers, expect, retries + 1)
            except TransientSourceError as error:
                if retries >= self.settings.max_retries:
                    if error.retry_after is not None:  # the next request waits it out
                        self.bucket.defer(error.retry_after)
                    raise RetriesExhaustedError(self.source, retries + 1, error) from None
                retries += 1
                delay = self._delay(retries, error)
                self.events.retry(self.source, _retry_reason(error), delay)
                log.warning(
                    "source_retry",
                    source=self.source,
                    url=shown.split("?", 1)[0],
                    reason=error.message,
                    retry=retries,
                    of=self.settings.max_retries,
                    delay_s=round(delay, 3),
                )
                if error.retry_after is not None:
                    self.bucket.defer(delay)  # the next acquire() waits it out
                else:
                    await asyncio.sleep(delay)

    def _delay(self, retry: int, error: TransientSourceError) -> float:
        if error.retry_after is None:
            return backoff_delay(
                retry, self.settings.initial_retry_delay, self.settings.max_retry_delay
            )
        if error.retry_after > self.settings.max_retry_delay:
            self.bucket.defer(error.retry_after)
            last = TransientSourceError(
                self.source,
                f"{error.message}; the upstream asks to wait {error.retry_after:.0f} s "
                f"(Retry-After), longer than MAX_RETRY_DELAY ({self.settings.max_retry_delay:g} s)",
                url=error.url,
                status=error.status,
                retry_after=error.retry_after,
            )
            raise RetriesExhaustedError(self.source, retry, last) from None
        return error.retry_after

    async def _attempt(
        self,
        url: str,
        shown: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        expect: type[list[Any]] | type[dict[str, Any]],
        attempt: int,
    ) -> JsonAnswer:
        started = time.monotonic()
        try:
            async with self.session.get(url, params=params, headers=headers) as response:
                body = await response.read()
                status = response.status
                content_type = response.headers.get("Content-Type", "")
                kept = {
                    name: response.headers[name]
                    for name in KEPT_HEADERS
                    if name in response.headers
                }
        except (TimeoutError, aiohttp.ClientError) as exc:
            seconds = time.monotonic() - started
            self.events.request(self.source, None, seconds)
            raise self._no_answer(exc, seconds, shown) from None
        seconds = time.monotonic() - started
        self.events.request(self.source, status, seconds)
        if status >= 300:
            self._raise_for_status(status, body, content_type, kept, shown)
        if len(body) > THREAD_PARSE_BYTES:
            data = await asyncio.to_thread(
                decode_json, body, content_type, expect, source=self.source, url=shown
            )
        else:
            data = decode_json(body, content_type, expect, source=self.source, url=shown)
        meta = ResponseMeta(
            url=shown,
            status=status,
            fetched_at=self.now(),
            elapsed_ms=round(seconds * 1000, 3),
            attempts=attempt,
            headers=kept,
        )
        return JsonAnswer(data=data, meta=meta)

    def _no_answer(self, exc: BaseException, seconds: float, shown: str) -> SourceError:
        """The error for a request that got no (complete) answer: transient unless a bug."""
        said = self.scrub(str(exc)) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            connect, read = self.settings.http_connect_timeout, self.settings.http_read_timeout
            said = (
                f"timed out after {seconds:.1f} s "
                f"(HTTP_CONNECT_TIMEOUT={connect:g}, HTTP_READ_TIMEOUT={read:g})"
            )
        elif isinstance(exc, aiohttp.ClientPayloadError):
            said = f"the answer broke off mid-body: {said}"
        elif isinstance(exc, aiohttp.ClientConnectionError):
            said = f"connection failed: {said}"
        else:  # an invalid URL, too many redirects, a malformed answer: retrying will not help
            return SourceError(self.source, f"request failed: {said}", url=shown)
        return TransientSourceError(self.source, said, url=shown)

    def _raise_for_status(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str], shown: str
    ) -> None:
        said = self.scrub(upstream_reason(body, content_type))
        message = f"HTTP {status_text(status)}: {said}"
        if is_transient_status(status):
            retry_after = parse_retry_after(headers.get("Retry-After"), self.now())
            raise TransientSourceError(
                self.source, message, url=shown, status=status, retry_after=retry_after
            )
        if status in self.key_statuses and self.key_setting:
            if self.has_key:
                message = f"the API key was rejected ({self.key_setting}): {message}"
            else:
                message = f"the upstream wants an API key (set {self.key_setting}): {message}"
        raise UpstreamRejectedError(self.source, message, url=shown, status=status)
