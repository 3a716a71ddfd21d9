"""unified_hourly: exact hourly OHLC of every observation, however and in whatever order it
arrives (the loader's upsert, late and out-of-order batches, changed values, deletes)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptoetl.db import load
from cryptoetl.db.pool import Pool

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
COLUMNS = (
    "source, coin_id, hour, open, open_at, high, low, close, close_at,"
    " market_cap, cap_at, volume_24h, volume_at, count"
)
# What the rollups must equal: the hours recomputed from the stored observations.
FROM_SCRATCH = """
SELECT source, coin_id, date_trunc('hour', observed_at, 'UTC') AS hour,
       (array_agg(price_usd ORDER BY observed_at))[1] AS open, min(observed_at) AS open_at,
       max(price_usd) AS high, min(price_usd) AS low,
       (array_agg(price_usd ORDER BY observed_at DESC))[1] AS close,
       max(observed_at) AS close_at,
       (array_agg(market_cap ORDER BY observed_at DESC)
            FILTER (WHERE market_cap IS NOT NULL))[1] AS market_cap,
       max(observed_at) FILTER (WHERE market_cap IS NOT NULL) AS cap_at,
       (array_agg(volume_24h ORDER BY observed_at DESC)
            FILTER (WHERE volume_24h IS NOT NULL))[1] AS volume_24h,
       max(observed_at) FILTER (WHERE volume_24h IS NOT NULL) AS volume_at,
       count(*) AS count
FROM unified_crypto_data GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
Obs = tuple[str, datetime, float, float | None, float | None]  # coin, at, price, cap, volume


async def upsert(pool: Pool, source: str, observations: list[Obs], run_id: int = 1) -> None:
    """Through the loader, one batch in one transaction, as a run writes it."""
    rows: list[load.StageRow] = [
        (coin, coin.title(), coin[:3], price, cap, volume, when, None)
        for coin, when, price, cap, volume in observations
    ]
    async with pool.acquire() as conn, conn.transaction():
        await load.ensure_staging(conn)
        await load.upsert_unified(conn, source, run_id, rows)


async def rollups(pool: Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(f"SELECT {COLUMNS} FROM unified_hourly ORDER BY 1, 2, 3")  # noqa: S608
    return [dict(r) for r in rows]


async def recomputed(pool: Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(FROM_SCRATCH)]


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


async def test_one_hour_by_hand(pool: Pool) -> None:
    """Open and close follow the observation times, not the arrival order; cap and volume are
    the latest non-null ones; high and low the extremes; count every observation."""
    await upsert(pool, "coingecko", [("btc", minutes(30), 10.0, 100.0, None)])
    await upsert(pool, "coingecko", [("btc", minutes(50), 9.0, None, 900.0)])
    # late: earlier than everything so far, and the hour's extremes
    await upsert(
        pool,
        "coingecko",
        [("btc", minutes(5), 7.0, 70.0, 700.0), ("btc", minutes(10), 12.0, 120.0, 1200.0)],
    )
    (row,) = await rollups(pool)
    assert (row["open"], row["high"], row["low"], row["close"]) == (7.0, 12.0, 7.0, 9.0)
    assert (row["market_cap"], row["cap_at"]) == (100.0, minutes(30))
    assert (row["volume_24h"], row["volume_at"]) == (900.0, minutes(50))
    assert (row["hour"], row["count"]) == (T0, 4)


async def test_an_updated_observation_recomputes_its_hour(pool: Pool) -> None:
    """The upsert rewrites a changed observation: a high that is no longer true is lowered."""
    await upsert(
        pool,
        "coingecko",
        [("btc", minutes(0), 10.0, 1.0, 1.0), ("btc", minutes(5), 50.0, 2.0, 2.0)],
    )
    assert (await rollups(pool))[0]["high"] == 50.0
    await upsert(pool, "coingecko", [("btc", minutes(5), 11.0, 3.0, 3.0)])
    (row,) = await rollups(pool)
    assert (row["high"], row["close"], row["market_cap"], row["count"]) == (11.0, 11.0, 3.0, 2)
    assert await rollups(pool) == await recomputed(pool)


async def test_deleting_every_observation_of_an_hour_removes_its_row(pool: Pool) -> None:
    await upsert(
        pool,
        "coingecko",
        [("btc", minutes(0), 10.0, None, None), ("btc", minutes(70), 11.0, None, None)],
    )
    await pool.execute("DELETE FROM unified_crypto_data WHERE observed_at < $1", minutes(60))
    assert [r["hour"] for r in await rollups(pool)] == [minutes(60)]
    await pool.execute("TRUNCATE unified_crypto_data")
    assert await rollups(pool) == []


async def test_random_batches_match_a_recomputation(pool: Pool) -> None:
    """Hundreds of observations of a few coins at two sources, in shuffled batches, some
    sent twice (unchanged), some with new values (updated), a few deleted: after every step
    the rollups are exactly the hours recomputed from what is stored."""
    rnd = random.Random(13)  # noqa: S311 - a repeatable shuffle
    observations: list[tuple[str, Obs]] = []
    for source in ("coingecko", "coinpaprika"):
        for coin in ("btc", "eth", "sol"):
            for step in range(0, 6 * 60, 5):
                observations.append(
                    (
                        source,
                        (
                            coin,
                            minutes(step + rnd.random()),
                            rnd.uniform(1, 100),
                            rnd.choice([None, rnd.uniform(1, 9)]),
                            rnd.choice([None, rnd.uniform(1, 9)]),
                        ),
                    )
                )
    rnd.shuffle(observations)
    sent: list[tuple[str, Obs]] = []
    while observations:
        batch, observations = observations[:97], observations[97:]
        if sent:  # some seen before, some of them with a new price
            for source, (coin, when, price, cap, volume) in rnd.sample(sent, 20):
                new_price = price if rnd.random() < 0.5 else rnd.uniform(1, 100)
                batch.append((source, (coin, when, new_price, cap, volume)))
        for source in ("coingecko", "coinpaprika"):
            mine = {(o[0], o[1]): o for s, o in batch if s == source}
            await upsert(pool, source, list(mine.values()))
        sent.extend(batch)
        assert await rollups(pool) == await recomputed(pool)
    await pool.execute(
        "DELETE FROM unified_crypto_data WHERE coin_id = 'eth' AND observed_at < $1",
        minutes(150),
    )
    assert await rollups(pool) == await recomputed(pool)
    total = await pool.fetchval("SELECT sum(count) FROM unified_hourly")
    assert total == await pool.fetchval("SELECT count(*) FROM unified_crypto_data")


async def test_hours_changed_after_a_settlement_in_the_same_transaction_are_settled(
    pool: Pool,
) -> None:
    """`SET CONSTRAINTS ALL IMMEDIATE` settles the pending hours in the middle of a
    transaction; hours it changes afterwards, at once or deferred to its commit, are settled
    in their turn (the first settlement does not make the later ones skip)."""
    await upsert(
        pool,
        "coingecko",
        [
            ("btc", minutes(0), 10.0, None, None),
            ("btc", minutes(5), 50.0, None, None),
            ("eth", minutes(65), 7.0, None, None),
            ("eth", minutes(70), 70.0, None, None),
            ("sol", minutes(130), 3.0, None, None),
            ("sol", minutes(135), 30.0, None, None),
        ],
    )
    update = "UPDATE unified_crypto_data SET price_usd = $1 WHERE coin_id = $2 AND observed_at = $3"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        await conn.execute(update, 11.0, "btc", minutes(5))
        assert await conn.fetchval("SELECT high FROM unified_hourly WHERE coin_id = 'btc'") == 11
        await conn.execute(update, 8.0, "eth", minutes(70))  # settled at the statement's end
        assert await conn.fetchval("SELECT high FROM unified_hourly WHERE coin_id = 'eth'") == 8
        await conn.execute("SET CONSTRAINTS ALL DEFERRED")
        await conn.execute(update, 4.0, "sol", minutes(135))  # settled at commit
        await conn.execute(
            "DELETE FROM unified_crypto_data WHERE coin_id = 'btc' AND observed_at = $1",
            minutes(0),
        )
    rows = {row["coin_id"]: row for row in await rollups(pool)}
    assert (rows["btc"]["open"], rows["btc"]["high"], rows["btc"]["count"]) == (11.0, 11.0, 1)
    assert (rows["eth"]["high"], rows["eth"]["close"]) == (8.0, 8.0)
    assert (rows["sol"]["high"], rows["sol"]["low"]) == (4.0, 3.0)
    assert await rollups(pool) == await recomputed(pool)


async def test_a_batch_rewriting_thousands_of_hours_settles_every_one(pool: Pool) -> None:
    """A corrected history (3,000 hourly observations, every price changed) rewrites 3,000
    hours in one transaction: each is recomputed at commit, highs lowered and raised alike."""
    first: list[Obs] = [
        ("btc", T0 + timedelta(hours=i), float(i % 50 + 1), None, None) for i in range(3000)
    ]
    await upsert(pool, "csv", first)
    corrected: list[Obs] = [
        (coin, when, price * 3 if i % 2 else price / 4, cap, volume)
        for i, (coin, when, price, cap, volume) in enumerate(first)
    ]
    await upsert(pool, "csv", corrected)
    rows = await rollups(pool)
    assert len(rows) == 3000
    assert [row["high"] for row in rows] == [price for _, _, price, _, _ in corrected]
    assert rows == await recomputed(pool)
