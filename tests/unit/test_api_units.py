"""Pure parts of the API: the cursor, parameter rules, content negotiation, freshness, caches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from cryptoetl.api.cache import LruCache
from cryptoetl.api.freshness import source_problems
from cryptoetl.api.params import DataParams, openapi_parameters
from cryptoetl.api.streaming import negotiate
from cryptoetl.db.data_query import (
    SORTS,
    Cursor,
    DataFilters,
    QueryError,
    build_query,
    decode_cursor,
    encode_cursor,
)
from cryptoetl.models.times import UTC_FORMAT, utc_text
from cryptoetl.sources import REGISTRY

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sort", "value"),
    [
        ("id", None),
        ("-observed_at", datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)),
        ("-market_cap", 123456789.0123456),
        ("market_cap", None),
        ("price_usd", 1e-12),
    ],
)
def test_a_cursor_round_trips_exactly(sort: str, value: object) -> None:
    """Every sort's key survives encoding: microseconds and full float precision included."""
    cursor = Cursor(sort, value, 987654321, 42, "abc123")  # type: ignore[arg-type]
    assert decode_cursor(encode_cursor(cursor)) == cursor


@pytest.mark.parametrize(
    "text",
    [
        "",
        "%%%",
        "WzEsImlkIl0",  # [1,"id"]: too short
        encode_cursor(Cursor("id", None, 5, 2, "x")).replace("W", "V", 1),
        "A" * 600,
    ],
)
def test_a_tampered_cursor_is_a_query_error(text: str) -> None:
    """Anything that is not a cursor we issued is refused, never passed to SQL."""
    with pytest.raises(QueryError) as caught:
        decode_cursor(text)
    assert caught.value.param == "cursor"


def test_page_and_cursor_and_time_window_rules() -> None:
    """page and cursor exclude each other; since must precede until; offsets follow pages."""
    filters = DataFilters(source="csv")
    query = build_query(filters=filters, sort=None, page=3, page_size=50, cursor=None)
    assert (query.offset, query.page, query.sort.name) == (100, 3, "id")
    cursor = query.next_cursor(None, 77)
    follow = build_query(filters=filters, sort=None, page=None, page_size=10, cursor=cursor)
    assert (follow.page, follow.offset, follow.after.last_id) == (4, 0, 77)  # type: ignore[union-attr]
    with pytest.raises(QueryError, match="either page or cursor"):
        build_query(filters=filters, sort=None, page=2, page_size=10, cursor=cursor)
    with pytest.raises(QueryError, match="later than since"):
        build_query(
            filters=DataFilters(since=NOW, until=NOW),
            sort=None,
            page=None,
            page_size=10,
            cursor=None,
        )


@pytest.mark.parametrize(
    ("explicit", "accept", "chosen"),
    [
        (None, None, "json"),
        (None, "text/csv", "csv"),
        (None, "application/x-ndjson", "ndjson"),
        (None, "text/csv;q=0.5, application/json", "json"),
        (None, "application/json;q=0.2, text/csv;q=0.9", "csv"),
        (None, "image/png", "json"),
        (None, "*/*", "json"),
        ("csv", "application/x-ndjson", "csv"),
    ],
)
def test_format_negotiation(explicit: str | None, accept: str | None, chosen: str) -> None:
    """format= wins; else the Accept type we serve with the highest q; else JSON."""
    assert negotiate(explicit, accept) == chosen


def _row(source: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "source": source,
        "done_status": None,
        "done_at": None,
        "done_error": None,
        "last_loaded_at": None,
    }
    row.update(values)
    return row


def test_freshness_rules() -> None:
    """Failed or partial last run, stale data, and never-loaded after the grace period."""
    started = NOW - timedelta(minutes=2)
    rows = [
        _row("a", done_status="success", last_loaded_at=NOW - timedelta(minutes=14)),
        _row("b", done_status="success", last_loaded_at=NOW - timedelta(minutes=16)),
        _row("c", done_status="failed", done_at=NOW, done_error="HTTP 401: bad key"),
        _row("d", done_status="partial", done_at=NOW, last_loaded_at=NOW),
        _row("e"),
    ]
    problems = source_problems(rows, interval_seconds=300, now=NOW, started_at=started)
    assert [p.split(":")[0] for p in problems] == ["b", "c", "d"]
    assert "HTTP 401: bad key" in problems[1]
    later = source_problems(
        [_row("e")], interval_seconds=300, now=NOW, started_at=NOW - timedelta(minutes=16)
    )
    assert later == ["e: no data loaded yet (16 min since start)"]


def test_lru_cache_keeps_within_its_budget() -> None:
    """The least recently used entries go first; an entry larger than the budget is not kept."""
    cache: LruCache[bytes] = LruCache(10, len)
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.get("a") == b"1234"
    cache.put("c", b"1234")
    assert (cache.get("b"), cache.get("a"), cache.get("c")) == (None, b"1234", b"1234")
    cache.put("huge", b"x" * 11)
    assert cache.get("huge") is None
    assert cache.used <= 10


def test_data_parameters_are_published_from_the_model() -> None:
    """The OpenAPI parameters are the model's fields; choices are enums from the code's lists."""
    parameters = {p["name"]: p for p in openapi_parameters(DataParams)}
    assert set(parameters) == set(DataParams.model_fields)
    assert parameters["source"]["schema"]["enum"] == list(REGISTRY.names)
    assert parameters["sort"]["schema"]["enum"] == list(SORTS)
    assert parameters["page_size"]["schema"]["maximum"] == 1000
    assert all(p["in"] == "query" and not p["required"] for p in parameters.values())
    assert all(p["description"] for p in parameters.values())


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2017, 9, 24, tzinfo=UTC), "2017-09-24T00:00:00.000000Z"),
        (datetime(2025, 2, 9, 17, 44, 4, 143000, tzinfo=UTC), "2025-02-09T17:44:04.143000Z"),
        (datetime(2025, 2, 9, 17, 44, 4, 1), "2025-02-09T17:44:04.000001Z"),  # noqa: DTZ001 - naive: UTC
        # another offset: converted to UTC, across midnight and a year
        (
            datetime(2025, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "2024-12-31T20:00:00.000000Z",
        ),
        (datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "1969-12-31T23:59:59.999999Z"),
    ],
)
def test_times_are_written_in_the_one_format(value: datetime, text: str) -> None:
    """UTC, `Z`, always six fractional digits: what `UTC_FORMAT` says, whatever the input's
    zone or fraction."""
    assert utc_text(value) == text
    assert utc_text(value) == value.replace(tzinfo=value.tzinfo or UTC).astimezone(UTC).strftime(
        UTC_FORMAT
    )
