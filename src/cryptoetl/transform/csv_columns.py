"""A block of CSV rows validated and converted a column at a time. Pure: no I/O.

`read_block` gives the same answer as `csv_rows.read_row` applied row by row (the same
accepted values to the bit, the same rejections with the same reasons), without a Python
object per row: numbers in the plain form (`-12.5`) are converted by Arrow in one call per
column, and every other cell (coins, dates, grouped numbers, bad values) is read once per
distinct value with the very functions the row path uses, then spread back to the rows by
index. Only rejected rows are assembled one by one, to word their reasons.

Number formats are inferred per file and column (`NumberFormats`): a value the row path
refuses as ambiguous between a thousands comma and a decimal comma is read the way the column
has shown it writes numbers in what was read of the file so far (this block included).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from cryptoetl.models import Rejection
from cryptoetl.transform.arrow_arrays import from_numpy, repeated, string_scalar, to_numpy
from cryptoetl.transform.csv_rows import CsvLayout, coin_of
from cryptoetl.transform.csv_values import (
    AmbiguousValue,
    merge_format,
    number_format,
    parse_datetime,
    parse_number_in,
)

if TYPE_CHECKING:
    from cryptoetl.transform.csv_stage import StagedRows

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_REMEMBERED = 100_000  # distinct coin cells remembered per file
_PLAIN_NUMBER = r"^-?[0-9]+(?:\.[0-9]+)?$"
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


@dataclass(slots=True)
class NumberFormats:
    """The number convention each numeric column of one file has shown so far (and, not
    saved, the coins of the file read so far: a coin cell is read once per file)."""

    by_column: dict[str, str] = field(default_factory=dict)
    coins: dict[str, tuple[str, str | None, str | None, tuple[str, ...]]] = field(
        default_factory=dict
    )

    def to_json(self) -> dict[str, str]:
        return dict(self.by_column)

    @classmethod
    def from_json(cls, value: object) -> NumberFormats:
        if not isinstance(value, Mapping):
            return cls()
        return cls({str(k): str(v) for k, v in value.items() if isinstance(v, str)})


@dataclass(frozen=True, slots=True)
class Block:
    """Rows of one file as string columns (by payload key), their line numbers, and their raw
    text on demand (`raw(i)`: row i's line as read)."""

    columns: Mapping[str, pa.Array]
    lines: Ints
    raw: Callable[[int], str]

    def __len__(self) -> int:
        return len(self.lines)


@dataclass(frozen=True, slots=True)
class Rows:
    """Accepted rows, column by column (NaN: no market cap / volume)."""

    lines: Ints
    coin_id: list[str]
    name: list[str | None]
    symbol: list[str | None]
    price: Floats
    market_cap: Floats
    volume: Floats
    observed_us: Ints
    # each row's coin cell as a code into `coin_table` (coin id, name, symbol) of its block
    coin_codes: Ints = field(default_factory=lambda: np.zeros(0, np.int64))
    coin_table: list[tuple[str, str | None, str | None]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines)

    def observed_at(self, i: int) -> datetime:
        return EPOCH + timedelta(microseconds=int(self.observed_us[i]))


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    raw: str
    reason: str


@dataclass(frozen=True, slots=True)
class FileRows:
    """One block of one file as the loader takes it: where it is in the file (fingerprint,
    lines, byte offsets), its accepted rows as columns, its rejected rows, and the number
    formats its columns follow."""

    fingerprint: str
    path: str
    size: int
    mtime_ns: int
    first_line: int
    last_line: int
    start_offset: int
    end_offset: int
    rows: Rows
    rejections: list[Rejection]
    number_formats: dict[str, str]
    # the accepted rows as the loader COPYs them (`csv_stage.stage_rows`), made in the worker
    # thread; None: not staged (the loader stages them)
    staged: StagedRows | None = None

    @property
    def fetched(self) -> int:
        return len(self.rows) + len(self.rejections)


@dataclass(frozen=True, slots=True)
class BlockResult:
    rows: Rows
    rejected: list[RejectedRow]
    formats_shown: dict[str, str]  # columns whose convention changed with this block


def _distinct(values: pa.Array) -> tuple[list[str], Ints]:
    encoded = pc.dictionary_encode(values)
    codes = to_numpy(encoded.indices).astype(np.int64)
    return encoded.dictionary.to_pylist(), codes


def _empty_strings(n: int) -> pa.Array:
    return repeated("", n)


@dataclass(slots=True)
class _Numbers:
    values: Floats  # NaN: missing or unreadable
    errors: dict[int, str]  # row -> why unreadable


def _plain(values: pa.Array) -> Bools:
    mask: Bools = to_numpy(pc.match_substring_regex(values, _PLAIN_NUMBER))
    return mask


def _numbers(values: pa.Array, plain: Bools, column_format: str | None) -> _Numbers:
    n = len(values)
    out = np.full(n, np.nan)
    if plain.any():
        out[plain] = to_numpy(pc.cast(pc.filter(values, from_numpy(plain)), pa.float64()))
    errors: dict[int, str] = {}
    rest = np.flatnonzero(~plain)
    if len(rest):
        uniques, codes = _distinct(pc.take(values, from_numpy(rest)))
        parsed: list[float | str | None] = []
        for text in uniques:
            try:
                parsed.append(parse_number_in(text, column_format))
            except AmbiguousValue as exc:
                parsed.append(str(exc))
        for row, code in zip(rest.tolist(), codes.tolist(), strict=True):
            value = parsed[code]
            if isinstance(value, float):
                out[row] = value
            elif isinstance(value, str):
                errors[row] = value
    return _Numbers(out, errors)


def _shown_formats(values: pa.Array, plain: Bools) -> str | None:
    """The convention the non-plain cells of a column show (None, one of them, or BOTH)."""
    if plain.all():
        return None
    rest = pc.filter(values, from_numpy(~plain))
    shown: str | None = None
    for text in pc.unique(rest).to_pylist():
        shown = merge_format(shown, number_format(text))
    return shown


def _dates(values: pa.Array, now: datetime) -> tuple[Ints, Bools, dict[int, str]]:
    """Microseconds since the epoch, which rows have a date, and why the others have none."""
    uniques, codes = _distinct(values)
    micros = np.zeros(len(uniques), np.int64)
    ok = np.zeros(len(uniques), np.bool_)
    reasons: list[str | None] = [None] * len(uniques)
    one = timedelta(microseconds=1)
    for index, text in enumerate(uniques):
        try:
            moment = parse_datetime(text, now)
        except AmbiguousValue as exc:
            reasons[index] = f"date {exc}"
            continue
        if moment is None:
            reasons[index] = ""  # worded with the column name by the caller
            continue
        micros[index] = (moment - EPOCH) // one
        ok[index] = True
    bad = np.flatnonzero(~ok[codes])
    return micros[codes], ok[codes], {int(r): reasons[codes[r]] or "" for r in bad}


def read_block(
    layout: CsvLayout,
    block: Block,
    *,
    default_observed_at: datetime,
    now: datetime,
    formats: NumberFormats,
) -> BlockResult:
    """Validate and convert `block`; `formats` is updated with what the block shows."""
    n = len(block)

    def column(key: str | None) -> pa.Array:
        return block.columns[key] if key is not None else _empty_strings(n)

    # the coin: read once per distinct (coin, name, symbol) cell
    coin_key = layout.coin_id or layout.name or layout.symbol
    trio = [column(coin_key), column(layout.name), column(layout.symbol)]
    # (a block never holds a NUL byte: such rows are rejected before, so it can join the cells)
    joined = pc.binary_join_element_wise(*trio, string_scalar("\x00")) if n else _empty_strings(0)
    uniques, coin_codes = _distinct(joined)
    known = formats.coins if len(formats.coins) < MAX_REMEMBERED else {}
    coins = []
    for text in uniques:
        coin = known.get(text)
        if coin is None:
            coin = known[text] = coin_of(layout, *text.split("\x00"))
        coins.append(coin)
    coin_bad = np.array([bool(c[3]) for c in coins] or [False], np.bool_)[coin_codes]

    # numbers: each column follows the convention it has shown so far, this block included
    changed: dict[str, str] = {}
    numbers: dict[str, _Numbers] = {}
    for key in (layout.price, layout.market_cap, layout.volume):
        if key is None:
            continue
        plain = _plain(column(key))
        before = formats.by_column.get(key)
        after = merge_format(before, _shown_formats(column(key), plain))
        if after is not None and after != before:
            formats.by_column[key] = changed[key] = after
        numbers[key] = _numbers(column(key), plain, formats.by_column.get(key))
    price = numbers[layout.price]
    cap = numbers.get(layout.market_cap or "", _Numbers(np.full(n, np.nan), {}))
    volume = numbers.get(layout.volume or "", _Numbers(np.full(n, np.nan), {}))

    if layout.date is not None:
        observed, dated, date_reasons = _dates(column(layout.date), now)
    else:
        observed = np.full(n, (default_observed_at - EPOCH) // timedelta(microseconds=1))
        dated, date_reasons = np.ones(n, np.bool_), {}

    with np.errstate(invalid="ignore"):
        bad = (
            coin_bad
            | np.isnan(price.values)
            | (price.values <= 0)
            | (cap.values < 0)
            | (volume.values < 0)
            | ~dated
        )
    bad_rows = np.flatnonzero(bad)
    rejected: list[RejectedRow] = []
    for row in bad_rows.tolist():
        problems = list(coins[coin_codes[row]][3])
        if row in price.errors:
            problems.append(f"price {price.errors[row]}")
        elif np.isnan(price.values[row]):
            problems.append(f"no price in {layout.price!r}")
        elif price.values[row] <= 0:
            cell = column(layout.price)[row].as_py()
            problems.append(f"price {cell!r} is not positive")
        for label, values in (("market cap", cap), ("volume", volume)):
            if row in values.errors:
                problems.append(f"{label} {values.errors[row]}")
        for label, values in (("market cap", cap), ("volume", volume)):
            if values.values[row] < 0:
                problems.append(f"{label} {float(values.values[row])} is negative")
        if row in date_reasons:
            problems.append(date_reasons[row] or f"no date in {layout.date!r}")
        rejected.append(RejectedRow(int(block.lines[row]), block.raw(row), "; ".join(problems)))

    keep = np.flatnonzero(~bad)
    kept_codes = coin_codes[keep].tolist()
    rows = Rows(
        lines=block.lines[keep],
        coin_id=[coins[c][0] for c in kept_codes],
        name=[coins[c][1] for c in kept_codes],
        symbol=[coins[c][2] for c in kept_codes],
        price=price.values[keep],
        market_cap=cap.values[keep],
        volume=volume.values[keep],
        observed_us=observed[keep],
        coin_codes=coin_codes[keep],
        coin_table=[coin[:3] for coin in coins],
    )
    return BlockResult(rows, rejected, changed)


def strings(values: Sequence[Sequence[str]], keys: Sequence[str]) -> dict[str, pa.Array]:
    """Rows of cells (each as long as `keys`) as string columns by key."""
    return {
        key: pa.array([row[index] for row in values], pa.string()) for index, key in enumerate(keys)
    }
