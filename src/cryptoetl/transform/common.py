"""Parsing every source shares: prices, amounts, timestamps, names, and how a rejection reads.

A usable price is a finite number >= 0 (not null, not a string of letters, not a boolean);
market cap and volume follow the same rule but may be null. A timestamp is an ISO 8601 string
(or unix seconds) taken as UTC when it carries no zone, and must lie between the first block
of Bitcoin and a day after the record was fetched.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, StringConstraints, ValidationError

from cryptoetl.models import Accepted, Batch, RawLocator, Rejection, SourceRecord, UnifiedRecord

EARLIEST = datetime(2009, 1, 3, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
GOT_CHARS = 60


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a boolean, not a number")
    return value


def _finite_non_negative(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    if value < 0:
        raise ValueError("negative")
    return value


def _optional_finite_non_negative(value: float | None) -> float | None:
    return None if value is None else _finite_non_negative(value)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if value < EARLIEST:
        raise ValueError("before 2009-01-03, not a market observation")
    return value


def _text_or_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


Price = Annotated[float, BeforeValidator(_not_bool), AfterValidator(_finite_non_negative)]
"""A usable USD price: required, finite, >= 0."""

Amount = Annotated[
    float | None, BeforeValidator(_not_bool), AfterValidator(_optional_finite_non_negative)
]
"""Market cap or volume: finite and >= 0 when present, null allowed."""

Timestamp = Annotated[datetime, BeforeValidator(_not_bool), AfterValidator(_utc)]
"""The source's own observation time, as an aware UTC datetime."""

CoinId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Text = Annotated[str | None, AfterValidator(_text_or_none)]

Model = TypeVar("Model", bound=BaseModel)


def normalize_symbol(symbol: str | None) -> str | None:
    """Ticker symbols in one case across sources (`btc` and `BTC` are the same symbol)."""
    return symbol.upper() if symbol else None


def raw_text(item: SourceRecord) -> str:
    """The record as text for `rejected_records.raw`: its own text, else compact JSON."""
    if item.raw_text is not None:
        return item.raw_text
    return json.dumps(item.payload, ensure_ascii=False, separators=(",", ":"), default=str)


def locator(item: SourceRecord, batch: Batch, coin_id: Any = None) -> str:
    """`page 2 #17 id=bitcoin`: the batch, the index in the response, the id if any."""
    text = f"{batch.label} #{item.position}"
    if isinstance(coin_id, str) and coin_id.strip():
        text += f" id={coin_id.strip()}"
    return text


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= GOT_CHARS else text[:GOT_CHARS] + "..."


def describe_errors(error: ValidationError) -> str:
    """`current_price: missing; market_cap: negative (got -5.0)`: one clause per problem."""
    clauses: list[str] = []
    for problem in error.errors(include_url=False):
        field = ".".join(str(part) for part in problem["loc"]) or "record"
        given = problem.get("input")
        if problem["type"] == "missing":
            clauses.append(f"{field}: missing")
            continue
        if given is None:
            clauses.append(f"{field}: null")
            continue
        message = str(problem["msg"]).removeprefix("Value error, ")
        message = message[0].lower() + message[1:] if message else "invalid"
        clauses.append(f"{field}: {message} (got {_got(given)})")
    return "; ".join(clauses)


def validate(model: type[Model], item: SourceRecord, batch: Batch) -> Model | Rejection:
    """The record parsed by `model`, or a Rejection saying every field that is wrong."""
    if item.raw_text is not None and not item.payload:
        return Rejection(
            locator=locator(item, batch),
            raw=item.raw_text,
            reason=f"not a JSON object: {_got(item.raw_text)}",
        )
    try:
        return model.model_validate(item.payload)
    except ValidationError as error:
        return Rejection(
            locator=locator(item, batch, item.payload.get("id")),
            raw=raw_text(item),
            reason=describe_errors(error),
        )


def accept(record: UnifiedRecord, item: SourceRecord, batch: Batch) -> Accepted | Rejection:
    """Accept `record` unless its observation time (the item's `last_updated`) lies in the
    future of the fetch."""
    if record.observed_at > batch.meta.fetched_at + FUTURE_SLACK:
        return Rejection(
            locator=locator(item, batch, record.coin_id),
            raw=raw_text(item),
            reason=(
                f"last_updated: in the future ({record.observed_at.isoformat()}, "
                f"fetched at {batch.meta.fetched_at.isoformat()})"
            ),
        )
    return Accepted(
        record=record,
        locator=RawLocator(key=record.coin_id, at=record.observed_at),
        item=item,
    )
