"""Schemathesis against the OpenAPI schema of a live `cryptoetl serve` with data loaded.

Every operation is called with generated parameters, valid and invalid: no answer may be a
5xx, and every answer must match what the schema documents (status, content type, headers,
body); invalid input must be refused. One check is left out: `positive_data_acceptance`
expects every schema-valid request to succeed, but two rules of /data cannot be written in
OpenAPI: a cursor is opaque (only one this API issued is valid, and a generated string never
is) and `page` excludes `cursor`. Both answer 422 by design.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from cryptoetl.db.pool import Pool
from tests.support.api_data import add_run, ago, load_rows
from tests.support.process import ServeProcess

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CPYTHON_AST_RACE = "recursion depth mismatch"


@pytest.mark.e2e
@pytest.mark.slow
async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    serve: Callable[..., ServeProcess], db_url: str, pool: Pool, tmp_path: Path
) -> None:
    """Generated requests to every operation: no 5xx, every response as documented."""
    await load_rows(pool, coins=20, steps=20)
    run_id = await add_run(
        pool, "csv", "partial", started=ago(minutes=3), finished=ago(minutes=2), rejected=1
    )
    await add_run(pool, "coingecko", "running", started=ago(seconds=5))
    await pool.execute(
        "INSERT INTO rejected_records (source, first_run_id, last_run_id, locator, raw, reason,"
        " raw_hash) VALUES ('csv', $1, $1, 'f:2', 'x', 'bad', 'h')",
        run_id,
    )
    server = serve({"DATABASE_URL": db_url, "ETL_RUN_ON_STARTUP": "false"})
    for attempt in range(2):
        result = await asyncio.to_thread(
            subprocess.run,
            [
                SCHEMATHESIS,
                "run",
                f"{server.base_url}/openapi.json",
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                "--max-examples",
                "40",
                "--seed",
                "20261125",
                # one worker: hypothesis describes strategies with ast.parse, which CPython
                # 3.11.7 can fail under threads ("AST constructor recursion depth mismatch",
                # gh-106905)
                "--workers",
                "1",
                "--request-timeout",
                "20",
                "--no-shrink",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        # That interpreter bug inside the tool (not a finding about the API) still shows up
        # now and then: only then is the run repeated, once.
        if (
            attempt == 0
            and result.returncode != 0
            and CPYTHON_AST_RACE in (result.stdout + result.stderr)
        ):
            continue
        break
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
    statuses = [
        orjson.loads(line)["status"]
        for line in server.log_text().splitlines()
        if line.startswith("{") and '"event":"request"' in line
    ]
    assert len(statuses) > 200
    assert max(statuses) < 500
