"""The three sources' fixtures loaded through the real pipeline, for the page tests.

`load_fixtures` runs the pipeline twice against the loopback upstreams of
`tests/support/upstream.py` and a copy of `tests/fixtures/csv`: a first run where every source
loads (CoinGecko's 250-coin page, CoinPaprika's 81 tickers, the twelve CSV files, whose Excel-
mangled one is quarantined: the CSV run is `partial`), then a second where CoinPaprika answers
503 until the retries run out (`failed`) while the others find nothing new. So the status page
has one source of each kind: OK, partial, failed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from cryptoetl.etl.pipeline import Pipeline
from cryptoetl.models import RunStatus, RunTrigger
from tests.support import FIXTURES
from tests.support.upstream import Upstream, server_error

CSV_FIXTURES = FIXTURES / "csv"
CSV_REJECTED = 2991  # the rows of the Excel-mangled file (tests/db/test_csv_pipeline.py)


def fixture_settings(
    source_settings: Callable[..., Settings], db_url: str, tmp_path: Path, **overrides: object
) -> Settings:
    """`source_settings` (the loopback upstreams, no pacing) on this test's database, with
    a copy of the CSV fixtures and one quick retry."""
    csv_dir = tmp_path / "csv"
    if not csv_dir.exists():
        shutil.copytree(CSV_FIXTURES, csv_dir)
    values: dict[str, object] = {
        "database_url": db_url,
        "etl_run_on_startup": False,
        "csv_file_path": str(csv_dir),
        "max_retries": 1,
        "initial_retry_delay": 0.01,
        "max_retry_delay": 0.05,
    }
    values.update(overrides)
    return source_settings(**values)


async def load_fixtures(settings: Settings, pool: Pool, upstream: Upstream) -> None:
    """Two runs of every source (see the module docstring)."""
    pipeline = Pipeline(settings, pool)
    first = {o.source: o.status for o in await pipeline.run(None, RunTrigger.CLI)}
    assert first == {
        "coingecko": RunStatus.SUCCESS,
        "coinpaprika": RunStatus.SUCCESS,
        "csv": RunStatus.PARTIAL,
    }, first
    upstream.program("coinpaprika", *(server_error(503) for _ in range(settings.max_retries + 1)))
    second = {o.source: o.status for o in await pipeline.run(None, RunTrigger.SCHEDULE)}
    assert second["coinpaprika"] is RunStatus.FAILED, second
