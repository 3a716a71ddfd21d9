"""source_stats stays exact whoever writes the unified table: the API's `total` relies on it."""

from __future__ import annotations

from cryptoetl.db.pool import Pool

INSERT = """
INSERT INTO unified_crypto_data (coin_id, price_usd, source, observed_at, run_id)
SELECT 'coin-' || i, i, $1, now(), 0 FROM generate_series(1, $2) AS i
"""


async def _stats(pool: Pool) -> dict[str, tuple[int, int]]:
    rows = await pool.fetch("SELECT source, row_count, data_version FROM source_stats")
    return {row["source"]: (row["row_count"], row["data_version"]) for row in rows}


async def test_counts_follow_inserts_updates_deletes(pool: Pool) -> None:
    """Each statement moves row_count by what it did and bumps the version of what it touched."""
    assert await _stats(pool) == {"coinpaprika": (0, 0), "coingecko": (0, 0), "csv": (0, 0)}
    await pool.execute(INSERT, "csv", 5)
    await pool.execute(INSERT, "coingecko", 3)
    stats = await _stats(pool)
    assert stats["csv"] == (5, 1)
    assert stats["coingecko"] == (3, 1)
    assert stats["coinpaprika"] == (0, 0)

    await pool.execute("UPDATE unified_crypto_data SET price_usd = 0 WHERE source = 'csv'")
    assert (await _stats(pool))["csv"] == (5, 2)
    await pool.execute(
        "UPDATE unified_crypto_data SET source = 'coingecko' "
        "WHERE coin_id = 'coin-1' AND source = 'csv'"
    )
    stats = await _stats(pool)
    assert stats["csv"] == (4, 3)
    assert stats["coingecko"] == (4, 2)

    await pool.execute("DELETE FROM unified_crypto_data WHERE source = 'coingecko'")
    assert (await _stats(pool))["coingecko"] == (0, 3)
    await pool.execute("UPDATE unified_crypto_data SET price_usd = 1 WHERE false")
    assert (await _stats(pool))["csv"] == (4, 3)

    await pool.execute("TRUNCATE unified_crypto_data")
    assert {k: v[0] for k, v in (await _stats(pool)).items()} == {
        "coinpaprika": 0,
        "coingecko": 0,
        "csv": 0,
    }
    real = await pool.fetchval("SELECT count(*) FROM unified_crypto_data")
    assert real == 0


async def test_upsert_counts_only_new_rows(pool: Pool) -> None:
    """INSERT ... ON CONFLICT counts inserted rows once; conflicting rows add nothing."""
    upsert = """
    INSERT INTO unified_crypto_data (coin_id, price_usd, source, observed_at, run_id)
    SELECT 'coin-' || i, $2, 'csv', '2024-01-01T00:00:00Z', 0 FROM generate_series(1, $1) AS i
    ON CONFLICT (source, coin_id, observed_at) DO UPDATE SET price_usd = EXCLUDED.price_usd
    WHERE unified_crypto_data.price_usd IS DISTINCT FROM EXCLUDED.price_usd
    """
    await pool.execute(upsert, 10, 1.0)
    await pool.execute(upsert, 15, 1.0)
    await pool.execute(upsert, 15, 2.0)
    row_count = await pool.fetchval("SELECT row_count FROM source_stats WHERE source = 'csv'")
    assert row_count == 15 == await pool.fetchval("SELECT count(*) FROM unified_crypto_data")
