"""The binary COPY staging of a CSV block: one row per observation, the later line winning,
in the order of each observation's first line (as the row path's staging did)."""

from __future__ import annotations

import random
import struct

import numpy as np

from cryptoetl.transform.csv_columns import Rows
from cryptoetl.transform.csv_stage import COPY_HEADER, COPY_TRAILER, ROW, stage_rows

# two cells name the same coin id (another spelling of its name): one coin for the staging
TABLE: list[tuple[str, str | None, str | None]] = [
    ("bitcoin", "Bitcoin", "BTC"),
    ("ether", "Ether", None),
    ("bitcoin", "bitcoin", "BTC"),
]


def _rows(codes: list[int], observed: list[int], lines: list[int]) -> Rows:
    n = len(codes)
    cap = np.array([np.nan if i % 3 == 0 else float(i) for i in range(n)])
    return Rows(
        lines=np.array(lines, np.int64),
        coin_id=[TABLE[c][0] for c in codes],
        name=[TABLE[c][1] for c in codes],
        symbol=[TABLE[c][2] for c in codes],
        price=np.arange(1, n + 1, dtype=np.float64) / 7,
        market_cap=cap,
        volume=np.full(n, 2.5),
        observed_us=np.array(observed, np.int64),
        coin_codes=np.array(codes, np.int64),
        coin_table=TABLE,
    )


def _expected(rows: Rows) -> list[tuple[str, str | None, int, int]]:
    """The row path's rule, row by row: a dict keyed by observation, in line order."""
    staged: dict[tuple[str, int], tuple[str, str | None, int, int]] = {}
    for i in sorted(range(len(rows)), key=lambda i: int(rows.lines[i])):
        coin = rows.coin_id[i]
        observed = int(rows.observed_us[i])
        staged[(coin, observed)] = (coin, rows.name[i], observed, int(rows.lines[i]))
    return list(staged.values())


def test_duplicates_keep_the_later_line_in_first_seen_order() -> None:
    rng = random.Random(7)  # noqa: S311 (test data, not secrets)
    for _ in range(50):
        n = rng.randint(1, 40)
        lines = rng.sample(range(2, 200), n)  # a block's rows need not come in line order
        rows = _rows(
            [rng.randrange(3) for _ in range(n)], [rng.randrange(4) for _ in range(n)], lines
        )
        staged = stage_rows(rows)
        names = {code: name for code, _, name, _ in staged.coins}
        ids = {code: coin for code, coin, _, _ in staged.coins}
        got = [
            (ids[int(r["code"])], names[int(r["code"])], int(r["observed"]), int(r["line"]))
            for r in staged.records
        ]
        assert got == _expected(rows)


def test_the_copy_data_is_postgresql_binary_with_nan_for_a_missing_number() -> None:
    rows = _rows([0, 1], [10, 10], [2, 3])
    data = b"".join(stage_rows(rows).chunks())
    assert data.startswith(COPY_HEADER)
    assert data.endswith(COPY_TRAILER)
    body = data[len(COPY_HEADER) : -len(COPY_TRAILER)]
    assert len(body) == 2 * ROW.itemsize
    fields, code_len, code, price_len, price, cap_len, cap = struct.unpack(">hiiidid", body[:34])
    assert (fields, code_len, code, price_len, cap_len) == (6, 4, 0, 8, 8)
    assert price == 1 / 7
    assert np.isnan(cap)  # no market cap


def test_an_empty_block_stages_nothing() -> None:
    staged = stage_rows(_rows([], [], []))
    assert len(staged) == 0
    assert staged.coins == []
