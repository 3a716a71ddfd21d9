"""What a `/api/v1/data` request asks for: filters, sort, page or cursor. Pure: no I/O.

`build_query(...)` turns the validated parameters into a `DataQuery`, or raises `QueryError`
naming the parameter. The cursor is opaque to clients: base64url of a small JSON document
holding the sort, the last row's sort key and id, the page it leads to, and a fingerprint of
the filters it was issued for (so it cannot silently be replayed against another query).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_PAGE = 10_000_000
MAX_ID = 2**63 - 1
CURSOR_VERSION = 1


@dataclass(frozen=True, slots=True)
class SortKey:
    """One allowed `sort` value: a column, a direction, and whether the column may be null."""

    name: str
    column: str
    descending: bool
    nullable: bool = False


SORTS: dict[str, SortKey] = {
    key.name: key
    for key in (
        SortKey("id", "id", descending=False),
        SortKey("-id", "id", descending=True),
        SortKey("observed_at", "observed_at", descending=False),
        SortKey("-observed_at", "observed_at", descending=True),
        SortKey("price_usd", "price_usd", descending=False),
        SortKey("-price_usd", "price_usd", descending=True),
        SortKey("market_cap", "market_cap", descending=False, nullable=True),
        SortKey("-market_cap", "market_cap", descending=True, nullable=True),
        SortKey("volume_24h", "volume_24h", descending=False, nullable=True),
        SortKey("-volume_24h", "volume_24h", descending=True, nullable=True),
    )
}
DEFAULT_SORT = "id"

SortValue = int | float | datetime | None


class QueryError(ValueError):
    """A parameter that cannot be honoured; `param` names it."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        self.message = message
        super().__init__(f"{param}: {message}")


@dataclass(frozen=True, slots=True)
class DataFilters:
    """Which rows match. `symbol` is compared case-insensitively; `until` is exclusive."""

    source: str | None = None
    coin_id: str | None = None
    symbol: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    latest: bool = False

    @property
    def by_source_only(self) -> bool:
        """True when the exact total is the source's row count (no count query needed)."""
        return (
            self.coin_id is None
            and self.symbol is None
            and self.since is None
            and self.until is None
            and not self.latest
        )

    def key(self) -> tuple[Any, ...]:
        return (
            self.source,
            self.coin_id,
            self.symbol.lower() if self.symbol is not None else None,
            self.since.isoformat() if self.since else None,
            self.until.isoformat() if self.until else None,
            self.latest,
        )

    def fingerprint(self) -> str:
        return hashlib.blake2b(orjson.dumps(self.key()), digest_size=6).hexdigest()


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: after the row whose sort value and id are given."""

    sort: str
    value: SortValue
    last_id: int
    page: int
    filters: str


@dataclass(frozen=True, slots=True)
class DataQuery:
    filters: DataFilters
    sort: SortKey
    page: int
    page_size: int
    offset: int = 0
    after: Cursor | None = None

    def key(self) -> tuple[Any, ...]:
        """Everything that decides the response body (besides the data version)."""
        after = None
        if self.after is not None:
            value = self.after.value
            shown = value.isoformat() if isinstance(value, datetime) else value
            after = (shown, self.after.last_id)
        return (self.filters.key(), self.sort.name, self.page, self.page_size, self.offset, after)

    def next_cursor(self, value: SortValue, last_id: int) -> str:
        return encode_cursor(
            Cursor(self.sort.name, value, last_id, self.page + 1, self.filters.fingerprint())
        )


def as_utc(value: datetime) -> datetime:
    """A naive datetime is taken as UTC; an aware one is converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(cursor: Cursor) -> str:
    value: Any = cursor.value
    if isinstance(value, datetime):
        value = as_utc(value).isoformat()
    doc = [CURSOR_VERSION, cursor.sort, value, cursor.last_id, cursor.page, cursor.filters]
    return _b64encode(orjson.dumps(doc))


def _sort_value(sort: SortKey, raw: Any) -> SortValue:
    if sort.column == "id":
        return None
    if raw is None:
        if sort.nullable:
            return None
        raise ValueError("missing sort value")
    if sort.column == "observed_at":
        if not isinstance(raw, str):
            raise ValueError("bad time")
        return as_utc(datetime.fromisoformat(raw))
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError("bad number")
    return float(raw)


def decode_cursor(text: str) -> Cursor:
    """The cursor a previous response handed out, or `QueryError` if it is not one."""
    try:
        if len(text) > 512:
            raise ValueError("too long")
        doc = orjson.loads(_b64decode(text))
        version, sort_name, raw_value, last_id, page, filters = doc
        if version != CURSOR_VERSION or sort_name not in SORTS:
            raise ValueError("unknown version or sort")
        if isinstance(last_id, bool) or not isinstance(last_id, int) or not 0 <= last_id <= MAX_ID:
            raise ValueError("bad id")
        if isinstance(page, bool) or not isinstance(page, int) or not 2 <= page <= MAX_PAGE:
            raise ValueError("bad page")
        if not isinstance(filters, str):
            raise ValueError("bad filters")
        value = _sort_value(SORTS[sort_name], raw_value)
    # OverflowError: a forged time at the edge of the calendar that UTC pushes out of it
    except (ValueError, TypeError, OverflowError, binascii.Error, orjson.JSONDecodeError):
        raise QueryError(
            "cursor", "not a cursor this API issued; use next_cursor from a response"
        ) from None
    return Cursor(sort_name, value, last_id, page, filters)


def build_query(
    *,
    filters: DataFilters,
    sort: str | None,
    page: int | None,
    page_size: int,
    cursor: str | None,
) -> DataQuery:
    """Combine the parameters; `QueryError` when they contradict each other."""
    if filters.since is not None and filters.until is not None and filters.since >= filters.until:
        raise QueryError("until", "must be later than since")
    if sort is not None and sort not in SORTS:
        raise QueryError("sort", f"must be one of {', '.join(SORTS)}")
    if cursor is None:
        number = page or 1
        return DataQuery(
            filters,
            SORTS[sort or DEFAULT_SORT],
            page=number,
            page_size=page_size,
            offset=(number - 1) * page_size,
        )
    if page is not None:
        raise QueryError("cursor", "give either page or cursor, not both")
    after = decode_cursor(cursor)
    if sort is not None and sort != after.sort:
        raise QueryError("sort", f"the cursor continues sort={after.sort}; drop sort or cursor")
    if after.filters != filters.fingerprint():
        raise QueryError("cursor", "the cursor was issued for other filters; repeat them")
    return DataQuery(filters, SORTS[after.sort], page=after.page, page_size=page_size, after=after)
