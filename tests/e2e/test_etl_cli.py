"""`cryptoetl etl run` as a real subprocess against the loopback upstreams and the real database:
exit codes, the summary table, idempotent re-runs, a down upstream, and SIGKILL mid-load."""

from __future__ import annotations

import socket

import pytest

from cryptoetl.db.pool import Pool
from tests.support.process import clean_env, etl, free_port, loopback_env, sigkill_when, start_etl
from tests.support.raw_pages import raw_records_of
from tests.support.upstream import Upstream

# the HTTP sources' raw records (in pages), per source, and the other tables
TABLES = {
    "raw_coingecko": raw_records_of("coingecko"),
    "raw_coinpaprika": raw_records_of("coinpaprika"),
    "unified_crypto_data": "unified_crypto_data",
    "rejected_records": "rejected_records",
}
PAPRIKA_TICKERS = 81  # the recorded CoinPaprika list served by the loopback upstream
GECKO_RAW = raw_records_of("coingecko")  # its stored raw records, one row each


async def counts(pool: Pool) -> dict[str, int]:
    return {
        name: await pool.fetchval(f"SELECT count(*) FROM {rows}")  # noqa: S608
        for name, rows in TABLES.items()
    }


async def test_two_cli_runs_load_once_and_then_report_unchanged(
    db_url: str, pool: Pool, upstream: Upstream
) -> None:
    """Exit 0 twice; the second run adds no row anywhere and its summary says unchanged."""
    upstream.coingecko_pages = 2
    env = loopback_env(db_url, upstream, COINGECKO_PAGES="2")

    first = await etl(env)
    assert first.code == 0, first.stderr
    rows = first.summary()
    assert rows["coingecko"][1:7] == ["success", "500", "500", "0", "0", "0"]
    assert rows["coinpaprika"][1:3] == ["success", str(PAPRIKA_TICKERS)]
    assert "coingecko: page 2: 500 rows" in first.stderr  # plain progress lines off a terminal
    after_first = await counts(pool)
    assert after_first["unified_crypto_data"] == 500 + PAPRIKA_TICKERS

    second = await etl(env)
    assert second.code == 0, second.stderr
    rows = second.summary()
    assert rows["coingecko"][1:7] == ["success", "500", "0", "0", "500", "0"]
    paprika = [str(PAPRIKA_TICKERS), "0", "0", str(PAPRIKA_TICKERS), "0"]
    assert rows["coinpaprika"][2:7] == paprika
    assert await counts(pool) == after_first


async def test_a_down_upstream_fails_its_source_and_the_run_exits_1(
    db_url: str, pool: Pool, upstream: Upstream
) -> None:
    """Nothing listens for CoinPaprika: it fails with the reason everywhere; CoinGecko loads."""
    down = f"http://127.0.0.1:{free_port()}/v1"
    env = loopback_env(db_url, upstream, COINPAPRIKA_BASE_URL=down, MAX_RETRIES="1")

    finished = await etl(env)

    assert finished.code == 1
    rows = finished.summary()
    assert rows["coingecko"][1:4] == ["success", "250", "250"]
    assert rows["coinpaprika"][1:3] == ["failed", "0"]
    error = rows["coinpaprika"][8]
    assert error.startswith("gave up after 2 attempts")  # the source is named once, beside it
    run = await pool.fetchrow("SELECT status, error FROM etl_runs WHERE source = 'coinpaprika'")
    assert run is not None
    assert (run["status"], run["error"]) == ("failed", error)
    checkpoint = await pool.fetchrow(
        "SELECT status, last_error FROM checkpoints WHERE source = 'coinpaprika'"
    )
    assert checkpoint is not None
    assert (checkpoint["status"], checkpoint["last_error"]) == ("failed", error)


async def test_an_unknown_source_is_a_usage_error_naming_the_known_ones(db_url: str) -> None:
    """`--source nasdaq` exits 2 before touching anything and lists the real sources."""
    finished = await etl(clean_env(DATABASE_URL=db_url), "--source", "nasdaq")
    assert finished.code == 2
    assert "invalid choice: 'nasdaq'" in finished.stderr
    assert "coinpaprika" in finished.stderr
    assert "coingecko" in finished.stderr
    assert "csv" in finished.stderr


@pytest.mark.slow
async def test_sigkill_mid_load_then_rerun_gives_exact_rows(
    db_url: str, pool: Pool, upstream: Upstream
) -> None:
    """kill -9 in the middle of a 40-page load; the rerun reaps the dead run, resumes, and ends
    with exactly one row per observation and nothing left running."""
    pages = 40
    upstream.coingecko_pages = pages
    upstream.delay["coingecko"] = 0.05
    env = loopback_env(db_url, upstream, COINGECKO_PAGES=str(pages))

    async def five_batches_in() -> bool:
        return bool(await pool.fetchval("SELECT coalesce(max(batches), 0) >= 5 FROM etl_runs"))

    process = await start_etl(env, "--source", "coingecko")
    await sigkill_when(process, five_batches_in, within=12)
    killed = await pool.fetchrow("SELECT id, status, batches, owner FROM etl_runs")
    assert killed is not None
    assert killed["status"] == "running"
    assert 5 <= killed["batches"] < pages
    loaded = await pool.fetchval("SELECT count(*) FROM unified_crypto_data")
    assert loaded == killed["batches"] * 250  # every committed batch whole, nothing more

    rerun = await etl(env, "--source", "coingecko")

    assert rerun.code == 0, rerun.stderr
    row = rerun.summary()["coingecko"]
    assert row[1] == "success"
    assert int(row[2]) <= (pages - killed["batches"]) * 250  # resumed, did not start over
    total = pages * 250
    assert await pool.fetchval("SELECT count(*) FROM unified_crypto_data") == total
    distinct = await pool.fetchval(
        "SELECT count(*) FROM (SELECT DISTINCT source, coin_id, observed_at "
        "FROM unified_crypto_data) AS d"
    )
    assert distinct == total
    raw = f"SELECT count(*), count(DISTINCT (coin_id, source_updated_at)) FROM {GECKO_RAW}"  # noqa: S608
    assert tuple(await pool.fetchrow(raw) or ()) == (total, total)  # each record stored once
    assert await pool.fetchval("SELECT count(*) FROM etl_runs WHERE status = 'running'") == 0
    dead = await pool.fetchrow("SELECT status, error FROM etl_runs WHERE id = $1", killed["id"])
    assert dead is not None
    assert dead["status"] == "failed"
    assert dead["error"].startswith(f"owner process {killed['owner']} died")
    assert killed["owner"].startswith(f"{socket.gethostname()}:{process.pid}:")
