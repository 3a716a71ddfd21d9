"""`export_history` on a real database, read back with DuckDB as an analyst would: the same
rows per source and day, the same values, typed columns, atomic and resumable re-exports."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cryptoetl.db.history_export import DaySlice
from cryptoetl.db.pool import Pool
from cryptoetl.etl.export.files import FILE_NAME
from cryptoetl.etl.export.history import export_history
from tests.support.api_data import START, load_rows

SOURCES = ("coingecko", "coinpaprika", "csv")
# 5 coins x 60 hourly steps from 2025-01-01 00:00 UTC: days 1 and 2 whole, day 3 half
STEPS = 60


def duck(out: Path, sql: str) -> list[tuple[Any, ...]]:
    """`sql` over the export, with `history` the exported rows (Hive partitions included)."""
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        source = f"read_parquet('{out}/**/*.parquet', hive_partitioning = true)"
        conn.execute(f"CREATE VIEW history AS SELECT * FROM {source}")  # noqa: S608
        rows: list[tuple[Any, ...]] = conn.execute(sql).fetchall()
        return rows


def files(out: Path) -> dict[str, tuple[int, int]]:
    """Every file under `out`: (inode, mtime_ns), to tell a rewritten file from a kept one."""
    return {
        str(path.relative_to(out)): (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
async def history(pool: Pool) -> Pool:
    await load_rows(pool, steps=STEPS, sources=SOURCES)
    return pool


async def db_counts(pool: Pool) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(
        """
        SELECT source, (observed_at AT TIME ZONE 'UTC')::date, count(*)
        FROM unified_crypto_data GROUP BY 1, 2 ORDER BY 1, 2
        """
    )
    return [tuple(row) for row in rows]


async def test_duckdb_reads_the_same_rows_per_source_and_day(history: Pool, tmp_path: Path) -> None:
    out = tmp_path / "export"
    async with history.acquire() as conn:
        report = await export_history(conn, out)
    expected = await db_counts(history)
    assert len(expected) == 9  # three sources x three days
    got = duck(out, "SELECT source, date, count(*) FROM history GROUP BY 1, 2 ORDER BY 1, 2")
    assert got == expected
    assert report.rows_written == 5 * STEPS * 3 == sum(n for *_, n in got)
    layout = sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet"))
    assert layout[0] == f"source=coingecko/date=2025-01-01/{FILE_NAME}"
    assert len(layout) == 9
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary file left


async def test_every_value_and_type_survives(history: Pool, tmp_path: Path) -> None:
    out = tmp_path / "export"
    # a NULL name and symbol, and a value no float32 could hold
    await history.execute(
        "UPDATE unified_crypto_data SET name = NULL, symbol = NULL, price_usd = $1 "
        "WHERE coin_id = 'coin-3' AND source = 'csv'",
        0.1 + 1e-12,
    )
    async with history.acquire() as conn:
        await export_history(conn, out)
    types = dict(duck(out, "SELECT column_name, column_type FROM (DESCRIBE history)"))
    assert types == {
        "id": "BIGINT",
        "coin_id": "VARCHAR",
        "name": "VARCHAR",
        "symbol": "VARCHAR",
        "price_usd": "DOUBLE",
        "market_cap": "DOUBLE",
        "volume_24h": "DOUBLE",
        "observed_at": "TIMESTAMP WITH TIME ZONE",
        "ingested_at": "TIMESTAMP WITH TIME ZONE",
        "run_id": "BIGINT",
        "source": "VARCHAR",
        "date": "DATE",
    }
    columns = "id, coin_id, name, symbol, price_usd, market_cap, volume_24h, source, observed_at"
    in_db = {
        row[0]: tuple(row)
        for row in await history.fetch(f"SELECT {columns} FROM unified_crypto_data")  # noqa: S608
    }
    exported = {row[0]: row for row in duck(out, f"SELECT {columns} FROM history")}  # noqa: S608
    assert exported.keys() == in_db.keys()
    assert exported == in_db  # every row, every column: NULLs, doubles and UTC times exact
    sample = duck(
        out,
        "SELECT price_usd, name FROM history WHERE source = 'csv' AND coin_id = 'coin-3' "
        "AND observed_at = TIMESTAMPTZ '2025-01-02 05:00:00+00'",
    )
    assert sample == [(0.1 + 1e-12, None)]
    assert duck(out, "SELECT min(observed_at) FROM history")[0][0] == START


async def test_a_second_export_rewrites_only_the_days_that_changed(
    history: Pool, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    async with history.acquire() as conn:
        await export_history(conn, out)
        before = files(out)
        again = await export_history(conn, out)
        assert (again.rows_written, len(again.skipped), files(out)) == (0, 9, before)

        # a load corrects one price on day 2 of coingecko, as the upsert does
        await conn.execute(
            "UPDATE unified_crypto_data SET price_usd = 123.25, ingested_at = now() "
            "WHERE source = 'coingecko' AND coin_id = 'coin-2' "
            "AND observed_at = '2025-01-02 03:00+00'"
        )
        changed = await export_history(conn, out)
    assert [(p.source, p.day) for p in changed.written] == [("coingecko", date(2025, 1, 2))]
    after = files(out)
    rewritten = {name for name in after if after[name] != before.get(name)}
    assert rewritten == {f"source=coingecko/date=2025-01-02/{FILE_NAME}"}
    assert duck(
        out,
        "SELECT price_usd FROM history WHERE source = 'coingecko' AND coin_id = 'coin-2' "
        "AND observed_at = TIMESTAMPTZ '2025-01-02 03:00:00+00'",
    ) == [(123.25,)]
    assert duck(out, "SELECT count(*) FROM history") == [(5 * STEPS * 3,)]


async def test_an_interrupted_export_resumes_where_it_stopped(
    history: Pool, tmp_path: Path
) -> None:
    out = tmp_path / "export"

    class Stop(Exception):
        pass

    def stop_after_four(part: DaySlice, written: bool) -> None:
        done.append(part)
        if len(done) == 4:
            raise Stop

    done: list[DaySlice] = []
    async with history.acquire() as conn:
        with pytest.raises(Stop):
            await export_history(conn, out, on_day=stop_after_four)
        assert len(list(out.rglob("*.parquet"))) == 4
        resumed = await export_history(conn, out)
    assert (len(resumed.skipped), len(resumed.written)) == (4, 5)
    assert duck(out, "SELECT count(*) FROM history") == [(5 * STEPS * 3,)]


async def test_range_and_source_select_whole_utc_days(history: Pool, tmp_path: Path) -> None:
    out = tmp_path / "export"
    async with history.acquire() as conn:
        report = await export_history(
            conn, out, since=date(2025, 1, 2), until=date(2025, 1, 3), sources=["csv"]
        )
    assert [(p.source, p.day, p.rows) for p in report.written] == [
        ("csv", date(2025, 1, 2), 5 * 24),
        ("csv", date(2025, 1, 3), 5 * 12),
    ]
    assert duck(out, "SELECT min(observed_at), max(observed_at) FROM history") == [
        (datetime(2025, 1, 2, tzinfo=UTC), datetime(2025, 1, 3, 11, tzinfo=UTC))
    ]


async def test_force_rewrites_every_day_and_small_batches_give_the_same_rows(
    history: Pool, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    async with history.acquire() as conn:
        await export_history(conn, out)
        before = files(out)
        forced = await export_history(conn, out, force=True, batch_rows=7)
    assert len(forced.written) == 9
    assert all(files(out)[name] != before[name] for name in before)
    assert duck(out, "SELECT count(*), count(DISTINCT id) FROM history") == [
        (5 * STEPS * 3, 5 * STEPS * 3)
    ]


def duck_csv(out: Path, sql: str) -> list[tuple[Any, ...]]:
    """`sql` over a CSV export, `history` being its rows (Hive partitions included)."""
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        source = f"read_csv('{out}/**/*.csv', hive_partitioning = true, header = true)"
        conn.execute(f"CREATE VIEW history AS SELECT * FROM {source}")  # noqa: S608
        rows: list[tuple[Any, ...]] = conn.execute(sql).fetchall()
        return rows


async def test_the_csv_variant_has_the_same_rows_and_values(history: Pool, tmp_path: Path) -> None:
    out = tmp_path / "csv"
    async with history.acquire() as conn:
        report = await export_history(conn, out, fmt="csv")
        before = files(out)
        again = await export_history(conn, out, fmt="csv")
    assert len(report.written) == 9
    assert (again.rows_written, files(out)) == (0, before)
    got = duck_csv(out, "SELECT source, date, count(*) FROM history GROUP BY 1, 2 ORDER BY 1, 2")
    assert got == await db_counts(history)
    columns = "id, coin_id, name, symbol, price_usd, market_cap, volume_24h, observed_at"
    in_db = {
        row[0]: tuple(row)
        for row in await history.fetch(f"SELECT {columns} FROM unified_crypto_data")  # noqa: S608
    }
    exported = {
        row[0]: row
        for row in duck_csv(
            out,
            "SELECT id, coin_id, name, symbol, price_usd, market_cap, volume_24h, "
            "observed_at::TIMESTAMPTZ FROM history",
        )
    }
    assert exported == in_db
    assert sorted(p.name for p in (out / "source=csv" / "date=2025-01-01").iterdir()) == [
        ".part-0.csv.stamp",
        "part-0.csv",
    ]


async def test_the_hourly_rollups_export_the_same_way(history: Pool, tmp_path: Path) -> None:
    """`unified_hourly` (kept by the load's triggers) as source=S/date=D files: the same rows
    and values as the table; unchanged days skipped; a changed price rewrites its day only."""
    out = tmp_path / "hourly"
    async with history.acquire() as conn:
        report = await export_history(conn, out, table="hourly")
        before = files(out)
        again = await export_history(conn, out, table="hourly")
        await conn.execute(
            "UPDATE unified_crypto_data SET price_usd = 999.5, ingested_at = now() "
            "WHERE source = 'csv' AND coin_id = 'coin-1' AND observed_at = '2025-01-02 05:00+00'"
        )
        changed = await export_history(conn, out, table="hourly")
    in_db = await history.fetch(
        "SELECT source, (hour AT TIME ZONE 'UTC')::date, count(*) FROM unified_hourly "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )
    assert len(in_db) == 9
    assert duck(out, "SELECT source, date, count(*) FROM history GROUP BY 1, 2 ORDER BY 1, 2") == [
        tuple(row) for row in in_db
    ]
    assert report.rows_written == 5 * STEPS * 3  # one observation per coin and hour here
    assert (again.rows_written, len(again.skipped)) == (0, 9)
    assert [(p.source, p.day) for p in changed.written] == [("csv", date(2025, 1, 2))]
    assert {name for name in files(out) if files(out)[name] != before.get(name)} == {
        f"source=csv/date=2025-01-02/{FILE_NAME}"
    }
    columns = "source, coin_id, hour, open, high, low, close, market_cap, volume_24h, count"
    rows = await history.fetch(f"SELECT {columns} FROM unified_hourly")  # noqa: S608
    exported = duck(out, f"SELECT {columns} FROM history")  # noqa: S608
    assert sorted(exported) == sorted(tuple(row) for row in rows)
    assert duck(
        out,
        "SELECT high, close FROM history WHERE source = 'csv' AND coin_id = 'coin-1' "
        "AND hour = TIMESTAMPTZ '2025-01-02 05:00:00+00'",
    ) == [(999.5, 999.5)]
