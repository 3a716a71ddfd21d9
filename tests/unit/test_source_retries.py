"""Retries, Retry-After, timeouts and final errors, observed from the loopback server's log."""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import formatdate, parsedate_to_datetime

import pytest

from cryptoetl.config import Settings
from cryptoetl.errors import (
    BadPayloadError,
    RetriesExhaustedError,
    SourceError,
    UpstreamRejectedError,
)
from tests.support.sourcing import RecordingEvents, gaps, make_source, run_source
from tests.support.upstream import (
    Fault,
    Upstream,
    bom,
    cloudflare_429,
    disconnect_mid_body,
    hang,
    html_ok,
    not_a_list,
    rate_limited,
    server_error,
    truncated,
)

MakeSettings = Callable[..., Settings]
JITTER = 0.15  # scheduling noise on a shared machine


async def test_retry_after_seconds_is_honoured(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """A 429 with Retry-After: 2 is retried no sooner than 2 s later, then succeeds."""
    upstream.program("coingecko", rate_limited("2"))
    events = RecordingEvents()
    settings = source_settings(max_retry_delay=5)
    outcome = await run_source(make_source("coingecko", settings, events=events))
    assert [r.status for r in upstream.requests_to("coingecko")] == [429, 200]
    assert gaps(upstream, "coingecko")[0] >= 2.0
    assert len(outcome.accepted) == 250
    assert outcome.batches[0].meta.attempts == 2
    assert events.retries == [("coingecko", "429", 2.0)]
    assert any(seconds >= 1.9 for _, seconds in events.waits)


async def test_retry_after_http_date_is_honoured(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """A Retry-After given as an HTTP date holds the retry until that moment."""
    until = time.time() + 2
    header = formatdate(until, usegmt=True)  # whole seconds: 1-2 s from now
    upstream.program("coinpaprika", rate_limited(header))
    outcome = await run_source(make_source("coinpaprika", source_settings(max_retry_delay=5)))
    first, second = upstream.requests_to("coinpaprika")
    assert (first.status, second.status) == (429, 200)
    assert second.wall >= parsedate_to_datetime(header).timestamp()
    assert second.at - first.at >= 0.9
    assert len(outcome.accepted) == 81


async def test_a_retry_after_beyond_the_cap_fails_now_instead_of_stalling(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """Retry-After longer than MAX_RETRY_DELAY: no early retry, a clear failure for this run."""
    upstream.program("coingecko", rate_limited("119"))
    with pytest.raises(RetriesExhaustedError) as caught:
        await run_source(make_source("coingecko", source_settings(max_retry_delay=5)))
    assert len(upstream.requests_to("coingecko")) == 1
    message = str(caught.value)
    assert "429" in message
    assert "wait 119 s" in message
    assert "MAX_RETRY_DELAY" in message


async def test_a_rejected_key_is_not_retried_and_says_so(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """401: one request only; the error names the key setting, quotes upstream, hides the key."""
    bad_key = "CG-not-a-valid-key-123456"
    upstream.valid_keys["coingecko"] = {"CG-the-real-key-987654"}
    settings = source_settings(coingecko_api_key=bad_key, max_retries=3)
    with pytest.raises(UpstreamRejectedError) as caught:
        await run_source(make_source("coingecko", settings))
    assert len(upstream.requests_to("coingecko")) == 1
    error = caught.value
    assert error.status == 401
    message = str(error)
    assert "the API key was rejected (COINGECKO_API_KEY)" in message
    assert "check your key in the developer dashboard" in message  # the upstream's own words
    assert bad_key not in message


async def test_a_hang_ends_at_the_read_timeout(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """An upstream that never answers fails after HTTP_READ_TIMEOUT, not when it wakes up."""
    upstream.program("coinpaprika", hang(30))
    settings = source_settings(http_read_timeout=0.5, max_retries=0)
    started = time.monotonic()
    with pytest.raises(RetriesExhaustedError) as caught:
        await run_source(make_source("coinpaprika", settings))
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 2.0
    assert "timed out" in str(caught.value)
    assert "HTTP_READ_TIMEOUT=0.5" in str(caught.value)


async def test_a_hang_is_retried_like_any_transient_failure(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """After one timed-out attempt the retry gets the data."""
    upstream.program("coinpaprika", hang(30))
    events = RecordingEvents()
    settings = source_settings(http_read_timeout=0.3)
    outcome = await run_source(make_source("coinpaprika", settings, events=events))
    assert len(outcome.accepted) == 81
    assert [reason for _, reason, _ in events.retries] == ["timeout"]
    assert [status for _, status, _ in events.requests] == [None, 200]


async def test_after_max_retries_the_source_fails_with_the_reason(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """MAX_RETRIES=2: three 503s, three requests, then a failure quoting the last one."""
    upstream.program("coingecko", *(server_error(503) for _ in range(5)))
    with pytest.raises(RetriesExhaustedError) as caught:
        await run_source(make_source("coingecko", source_settings(max_retries=2)))
    assert [r.status for r in upstream.requests_to("coingecko")] == [503, 503, 503]
    error = caught.value
    assert error.attempts == 3
    assert error.last.status == 503
    assert "gave up after 3 attempts: HTTP 503 Service Unavailable: upstream 503" in str(error)


async def test_backoff_grows_with_jitter_and_stays_under_the_cap(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """Retry gaps follow INITIAL_RETRY_DELAY doubling, jittered, never above MAX_RETRY_DELAY."""
    upstream.program("coinpaprika", *(server_error(500) for _ in range(6)))
    settings = source_settings(initial_retry_delay=0.1, max_retry_delay=0.2, max_retries=6)
    outcome = await run_source(make_source("coinpaprika", settings))
    assert len(outcome.accepted) == 81
    waits = gaps(upstream, "coinpaprika")
    assert len(waits) == 6
    # Uncapped, the steps would be 0.1, 0.2, 0.4, 0.8, 1.6, 3.2 s; each wait is in [step/2, step].
    assert 0.05 <= waits[0] < 0.1 + JITTER
    assert all(0.1 <= waited < 0.2 + JITTER for waited in waits[1:])
    assert sum(waits[2:]) < 4 * 0.2 + JITTER  # uncapped the last four alone take >= 3 s
    assert len(set(waits)) == len(waits)


async def test_cloudflare_html_429_is_retried_and_described(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """An HTML 429 counts as rate limiting; if it persists the error names the page."""
    upstream.program("coingecko", cloudflare_429(), cloudflare_429())
    with pytest.raises(RetriesExhaustedError) as caught:
        await run_source(make_source("coingecko", source_settings(max_retries=1)))
    message = str(caught.value)
    assert "HTTP 429 Too Many Requests" in message
    assert "text/html" in message
    assert "used Cloudflare to restrict access" in message


async def test_a_body_cut_off_by_a_dropped_connection_is_retried(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """A connection lost mid-body is transient: the retry loads everything."""
    upstream.program("coingecko", disconnect_mid_body())
    outcome = await run_source(make_source("coingecko", source_settings()))
    assert len(upstream.requests_to("coingecko")) == 2
    assert len(outcome.accepted) == 250


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (truncated, "truncated JSON"),
        (bom, "byte order mark"),
        (not_a_list, "expected a JSON array, got an object with keys status"),
        (html_ok, "not JSON"),
    ],
)
async def test_a_body_that_is_not_the_promised_json_is_an_error(
    upstream: Upstream,
    source_settings: MakeSettings,
    fault: Callable[[], Fault],
    expected: str,
) -> None:
    """Truncated JSON, a BOM, an object for a list, HTML with 200: an error naming what came."""
    upstream.program("coinpaprika", fault())
    with pytest.raises(BadPayloadError) as caught:
        await run_source(make_source("coinpaprika", source_settings()))
    assert len(upstream.requests_to("coinpaprika")) == 1
    message = str(caught.value)
    assert expected in message
    assert "/v1/tickers" in message


async def test_a_failure_after_some_pages_keeps_the_yielded_batches(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """Pages already yielded stay yielded (with their cursors); the failure still raises."""
    upstream.coingecko_pages = 3
    settings = source_settings(coingecko_pages=3, max_retries=0)
    source = make_source("coingecko", settings)
    seen = []
    fetch = source.fetch({})
    seen.append(await anext(fetch))
    upstream.program("coingecko", server_error(500))
    with pytest.raises(SourceError):
        seen.append(await anext(fetch))
    assert [batch.cursor["next_page"] for batch in seen] == [2]
    assert [r.query["page"] for r in upstream.requests_to("coingecko")] == ["1", "2"]


async def test_a_run_of_server_errors_and_a_plain_429_is_ridden_out(
    upstream: Upstream, source_settings: MakeSettings
) -> None:
    """500, 429 without Retry-After, 503, 502: retried with backoff, the fifth answer loads."""
    upstream.program(
        "coingecko", server_error(500), rate_limited(), server_error(503), server_error(502)
    )
    events = RecordingEvents()
    settings = source_settings(max_retries=4)
    outcome = await run_source(make_source("coingecko", settings, events=events))
    statuses = [r.status for r in upstream.requests_to("coingecko")]
    assert statuses == [500, 429, 503, 502, 200]
    assert [reason for _, reason, _ in events.retries] == ["500", "429", "503", "502"]
    assert all(0 < delay <= 0.2 for _, _, delay in events.retries)
    assert outcome.batches[0].meta.attempts == 5
    assert len(outcome.accepted) == 250
