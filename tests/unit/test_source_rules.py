"""Pure rules of the HTTP helper: backoff, Retry-After, what is transient, masking, bodies."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from cryptoetl.errors import BadPayloadError
from cryptoetl.log import SecretMasker
from cryptoetl.sources.body import decode_json, display_url, upstream_reason
from cryptoetl.sources.retry import backoff_delay, is_transient_status, parse_retry_after

NOW = datetime(2025, 2, 9, 17, 44, 0, tzinfo=UTC)


def test_backoff_doubles_jitters_and_never_exceeds_the_cap() -> None:
    """Retry n waits between half and all of min(initial * 2^(n-1), max), never more."""
    rng = random.Random(7)  # noqa: S311 - seeded jitter, not cryptography
    for retry in range(1, 40):
        step = min(60.0, 1.0 * 2 ** (retry - 1))
        delays = [backoff_delay(retry, 1.0, 60.0, rng) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert max(delays) - min(delays) > step / 4  # jitter really spreads the retries
    assert backoff_delay(1000, 1.0, 60.0) <= 60.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("2", 2.0),
        ("0.5", 0.5),
        (" 120 ", 120.0),
        ("-3", 0.0),
        ("Sun, 09 Feb 2025 17:44:30 GMT", 30.0),
        ("Sun, 09 Feb 2025 17:40:00 GMT", 0.0),  # already past
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    header: str | None, seconds: float | None
) -> None:
    """Seconds or an HTTP date (RFC 9110); unreadable values are ignored, past dates are 0."""
    assert parse_retry_after(header, NOW) == seconds


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (429, True),
        (408, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (402, False),
        (422, False),
    ],
)
def test_only_rate_limits_timeouts_and_server_errors_are_retried(
    status: int, transient: bool
) -> None:
    """429, 408 and 5xx are transient; any other 4xx is final."""
    assert is_transient_status(status) is transient


def test_urls_in_messages_carry_no_secret() -> None:
    """Passwords, key-like query parameters and known keys are masked in shown URLs."""
    scrub = SecretMasker(["sekrit-key-42"]).mask_text
    shown = display_url(
        "https://user:pw@api.example.com/v3/x?x_cg_demo_api_key=abc&page=2",
        {"token": "t0k", "vs_currency": "usd", "q": "sekrit-key-42"},
        scrub,
    )
    assert "user:pw@" not in shown
    assert "user:***@" in shown
    assert "abc" not in shown
    assert "t0k" not in shown
    assert "sekrit-key-42" not in shown
    assert "page=2" in shown
    assert "vs_currency=usd" in shown


def test_error_bodies_are_read_in_the_providers_shapes() -> None:
    """CoinGecko's status object, CoinPaprika's error string, an HTML title, plain text."""
    gecko = b'{"status":{"error_code":429,"error_message":"You\'ve exceeded the Rate Limit."}}'
    assert (
        upstream_reason(gecko, "application/json") == "error 429: You've exceeded the Rate Limit."
    )
    assert upstream_reason(b'{"error":"id not found"}', "application/json") == "id not found"
    html = b"<html><head><title>502 Bad Gateway</title></head></html>"
    assert upstream_reason(html, "text/html").startswith("an HTML page titled '502 Bad Gateway'")
    assert upstream_reason(b"oops", "text/plain") == "text/plain, 4 bytes, starting 'oops'"
    assert upstream_reason(b"", "") == "no content type, empty body"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "expected JSON, got application/json, empty body"),
        (b"[1, 2", "truncated JSON"),
        (b"\xef\xbb\xbf[]", "byte order mark"),
        (b'{"a": 1}', "expected a JSON array, got an object with keys a"),
        (b'"text"', "expected a JSON array, got a str"),
        (b"\xff\xfe[]", "not UTF-8"),
        (b"<html>", "not JSON"),
    ],
)
def test_bodies_that_are_not_a_json_array_are_refused(body: bytes, expected: str) -> None:
    """Each refusal names what came back."""
    with pytest.raises(BadPayloadError) as caught:
        decode_json(body, "application/json", list, source="s", url="http://u")
    assert expected in str(caught.value)
    assert caught.value.url == "http://u"


def test_a_json_array_is_returned_as_parsed() -> None:
    """The happy path returns the list itself."""
    assert decode_json(b'[{"id": "a"}]', "application/json", list, source="s", url="u") == [
        {"id": "a"}
    ]
