"""The migration runner: in order, each once, checksummed, atomic, safe to run concurrently."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from cryptoetl.db.migrate import load_migrations, migrate
from cryptoetl.errors import MigrationChecksumError, MigrationError

DESIGN_TABLES = {
    "raw_http",
    "raw_csv",
    "unified_crypto_data",
    "rejected_records",
    "etl_runs",
    "checkpoints",
    "scheduler_lease",
    "schema_migrations",
}


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row["tablename"] for row in rows}


def _write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql)


async def test_shipped_migrations_create_every_table_of_the_design(empty_db_url: str) -> None:
    """A fresh database gets every table the design lists, and the unique observation key."""
    conn = await asyncpg.connect(empty_db_url)
    try:
        applied = await migrate(conn)
        assert applied == [m.filename for m in load_migrations()]
        assert await _tables(conn) >= DESIGN_TABLES
        key = await conn.fetchval(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname = 'unified_observation'"
        )
        assert key == "UNIQUE (source, coin_id, observed_at)"
    finally:
        await conn.close()


async def test_migrating_twice_changes_nothing(empty_db_url: str) -> None:
    """The second run applies nothing and leaves the record as it was."""
    conn = await asyncpg.connect(empty_db_url)
    try:
        await migrate(conn)
        before = await conn.fetch("SELECT * FROM schema_migrations ORDER BY version")
        assert await migrate(conn) == []
        after = await conn.fetch("SELECT * FROM schema_migrations ORDER BY version")
        assert before == after
    finally:
        await conn.close()


async def test_files_apply_in_order_and_each_once(empty_db_url: str, tmp_path: Path) -> None:
    """Numbered files apply in numeric order; a new file applies alone on the next run."""
    _write(tmp_path, "0002_second.sql", "INSERT INTO t VALUES (2);")
    _write(tmp_path, "0001_first.sql", "CREATE TABLE t (v int); INSERT INTO t VALUES (1);")
    conn = await asyncpg.connect(empty_db_url)
    try:
        assert await migrate(conn, tmp_path) == ["0001_first.sql", "0002_second.sql"]
        _write(tmp_path, "0003_third.sql", "INSERT INTO t VALUES (3);")
        assert await migrate(conn, tmp_path) == ["0003_third.sql"]
        values = [r["v"] for r in await conn.fetch("SELECT v FROM t ORDER BY v")]
        assert values == [1, 2, 3]
        checksums = await conn.fetch("SELECT checksum FROM schema_migrations")
        assert all(len(r["checksum"]) == 64 for r in checksums)
    finally:
        await conn.close()


async def test_an_edited_applied_migration_is_refused(empty_db_url: str, tmp_path: Path) -> None:
    """Changing a file after it was applied stops the runner with a clear error."""
    _write(tmp_path, "0001_first.sql", "CREATE TABLE t (v int);")
    conn = await asyncpg.connect(empty_db_url)
    try:
        await migrate(conn, tmp_path)
        _write(tmp_path, "0001_first.sql", "CREATE TABLE t (v bigint);")
        with pytest.raises(MigrationChecksumError, match=r"0001_first\.sql.*changed after it was"):
            await migrate(conn, tmp_path)
    finally:
        await conn.close()


async def test_a_failing_migration_keeps_nothing(empty_db_url: str, tmp_path: Path) -> None:
    """A file that fails half-way is rolled back whole and not recorded."""
    _write(tmp_path, "0001_ok.sql", "CREATE TABLE a (v int);")
    _write(tmp_path, "0002_bad.sql", "CREATE TABLE b (v int); SELECT * FROM missing_table;")
    conn = await asyncpg.connect(empty_db_url)
    try:
        with pytest.raises(MigrationError, match=r"0002_bad\.sql failed: .*missing_table"):
            await migrate(conn, tmp_path)
        assert {"a", "schema_migrations"} == await _tables(conn)
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        assert versions == [1]
    finally:
        await conn.close()


async def test_misnamed_files_are_refused(tmp_path: Path) -> None:
    """Only NNNN_name.sql files are migrations; a duplicate version is an error."""
    _write(tmp_path, "1_first.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match=r"must look like 0001_name\.sql"):
        load_migrations(tmp_path)
    (tmp_path / "1_first.sql").unlink()
    _write(tmp_path, "0001_a.sql", "SELECT 1;")
    _write(tmp_path, "0001_b.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="version 1 is used by"):
        load_migrations(tmp_path)


async def test_concurrent_runners_apply_each_file_once(empty_db_url: str, tmp_path: Path) -> None:
    """Four processes' worth of runners starting together: every file applied exactly once."""
    _write(tmp_path, "0001_t.sql", "CREATE TABLE t (v int); SELECT pg_sleep(0.3);")
    _write(tmp_path, "0002_i.sql", "INSERT INTO t VALUES (1);")
    conns = [await asyncpg.connect(empty_db_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c, tmp_path) for c in conns))
        assert sorted(name for applied in results for name in applied) == [
            "0001_t.sql",
            "0002_i.sql",
        ]
        assert await conns[0].fetchval("SELECT count(*) FROM t") == 1
    finally:
        for conn in conns:
            await conn.close()
