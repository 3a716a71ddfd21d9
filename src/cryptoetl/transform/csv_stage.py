"""A block's accepted rows as the loader stages them: PostgreSQL binary COPY data, built from
the columns with numpy (no Python object per row). Pure: no I/O.

One staged row per observation (coin, time), in line order; of two rows of one observation the
later line wins, as the row path's staging did. A staged row is fixed-width: the coin is a code
into `coins` (the block's distinct (coin id, name, symbol) cells, staged as a small table of
their own), and a missing market cap or volume is NaN, which the loader reads back as NULL
(an accepted number is never NaN).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
COPY_TRAILER = b"\xff\xff"
# columns of the staging table, in this order: code int4, price, market cap, volume float8,
# observed_us, line int8; each field is preceded by its byte length
COLUMNS = ("code", "price_usd", "market_cap", "volume_24h", "observed_us", "line")
ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("code_len", ">i4"),
        ("code", ">i4"),
        ("price_len", ">i4"),
        ("price", ">f8"),
        ("cap_len", ">i4"),
        ("cap", ">f8"),
        ("volume_len", ">i4"),
        ("volume", ">f8"),
        ("observed_len", ">i4"),
        ("observed", ">i8"),
        ("line_len", ">i4"),
        ("line", ">i8"),
    ]
)
CHUNK_ROWS = 8192  # rows of binary COPY data handed to the connection at a time

Coin = tuple[int, str, str | None, str | None]


class Rows(Protocol):
    """What staging reads of a block's accepted rows (`csv_columns.Rows`)."""

    @property
    def lines(self) -> Ints: ...
    @property
    def price(self) -> Floats: ...
    @property
    def market_cap(self) -> Floats: ...
    @property
    def volume(self) -> Floats: ...
    @property
    def observed_us(self) -> Ints: ...
    @property
    def coin_codes(self) -> Ints: ...
    @property
    def coin_table(self) -> Sequence[tuple[str, str | None, str | None]]: ...
    def __len__(self) -> int: ...


@dataclass(frozen=True, slots=True)
class StagedRows:
    """The staged rows of one block (`records`, binary COPY tuples) and the coins they name."""

    coins: list[Coin]
    records: npt.NDArray[np.void]

    def __len__(self) -> int:
        return len(self.records)

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[bytes]:
        """The binary COPY data: header, `rows` records at a time, trailer."""
        yield COPY_HEADER
        for start in range(0, len(self.records), rows):
            yield self.records[start : start + rows].tobytes()
        yield COPY_TRAILER


def _winners(coin: Ints, observed: Ints, lines: Ints) -> Ints:
    """Indexes of the staged rows: per (coin, observed) the row of the last line, in the order
    of each observation's first line."""
    n = len(lines)
    by_line = np.argsort(lines, kind="stable")
    position = np.arange(n)
    order = np.lexsort((position, observed[by_line], coin[by_line]))
    coin_sorted, observed_sorted = coin[by_line][order], observed[by_line][order]
    new = np.ones(n, np.bool_)
    new[1:] = (coin_sorted[1:] != coin_sorted[:-1]) | (observed_sorted[1:] != observed_sorted[:-1])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n) - 1
    first, last = order[starts], order[ends]
    winners: Ints = by_line[last[np.argsort(first, kind="stable")]]
    return winners


def stage_rows(rows: Rows) -> StagedRows:
    """The binary COPY staging of `rows` (see the module docstring)."""
    if not len(rows):
        return StagedRows([], np.empty(0, ROW))
    # one number per coin id (two cells may name one coin with other names or symbols)
    ids: dict[str, int] = {}
    coin_of_code = np.array([ids.setdefault(c[0], len(ids)) for c in rows.coin_table], np.int64)
    chosen = _winners(coin_of_code[rows.coin_codes], rows.observed_us, rows.lines)
    codes = rows.coin_codes[chosen]
    records = np.empty(len(chosen), ROW)
    records["fields"] = len(COLUMNS)
    records["code_len"] = 4
    records["code"] = codes
    for name, values in (
        ("price", rows.price),
        ("cap", rows.market_cap),
        ("volume", rows.volume),
        ("observed", rows.observed_us),
        ("line", rows.lines),
    ):
        records[f"{name}_len"] = 8
        records[name] = values[chosen]
    coins = [(int(code), *rows.coin_table[code]) for code in np.unique(codes).tolist()]
    return StagedRows(coins, records)
