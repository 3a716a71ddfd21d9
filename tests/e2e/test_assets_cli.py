"""`cryptoetl assets rebuild` as a real subprocess on the test database."""

from __future__ import annotations

import asyncio

from cryptoetl.db.pool import Pool
from tests.support.assets_data import load_series, observe
from tests.support.process import CRYPTOETL, clean_env


async def rebuild(db_url: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        CRYPTOETL,
        "assets",
        "rebuild",
        env=clean_env(DATABASE_URL=db_url, LOG_LEVEL="WARNING"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_rebuild_maps_what_is_loaded_and_a_second_run_changes_nothing(
    pool: Pool, db_url: str
) -> None:
    """The first rebuild decides every coin and says what stayed unmapped; the second is a no-op."""
    await load_series(pool)
    await observe(pool, "csv", "xyz", None, "XYZ")
    code, out, err = await rebuild(db_url)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == ("coins: 3 (3 new)  mapped: 2  unmapped: 1  changed: 3  assets created: 8")
    assert lines[1] == "unmapped by rule: symbol_only 1"
    assert "status=unmapped" in lines[2]
    assert (
        await pool.fetchval("SELECT asset_id FROM asset_mappings WHERE coin_id = 'tst-testcoin'")
        == "testcoin"
    )
    code, out, err = await rebuild(db_url)
    assert code == 0, err
    assert out.splitlines()[0] == (
        "coins: 3 (0 new)  mapped: 2  unmapped: 1  changed: 0  assets created: 0"
    )
