"""Settle bench: what a commit costs that rewrites many hours of the history (migration 0022).

An UPDATE or DELETE of `unified_crypto_data` notes the hours it touched in
`unified_hourly_pending`; a deferred constraint trigger settles them when the transaction
commits. It fires once per pending row. Up to 0021 every call after the first walked the index
entries of all the transaction's pending rows to find nothing, so a commit cost grew with the
square of the hours rewritten (a corrected CSV history loaded again, a backfill over stored
hours). Since 0022 the first call settles and the others return at once.

For each size N, in a fresh database: N hourly observations of one coin, then one transaction
that changes every price (as the loader's upsert does for a corrected file). It reports the
UPDATE statement itself (the same-run limit: the rows rewritten, their indexes and the
statement trigger) and the COMMIT (the settlement), as median seconds over `--repeat` rounds,
and the COMMIT as a ratio to the UPDATE. With `--compare` the same is measured with 0013's
trigger functions put back, in databases of their own.

    python bench/settle.py [--sizes 8000 32000 128000] [--repeat 3]
    python bench/settle.py --sizes 2000 4000 8000 --compare   # 0013's grow as the square
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cryptoetl.db.embedded import EmbeddedPostgres, server_parameters  # noqa: E402
from cryptoetl.db.migrate import default_directory, migrate  # noqa: E402

SEED = """
INSERT INTO unified_crypto_data (coin_id, name, symbol, price_usd, source, observed_at, run_id)
SELECT 'bitcoin', 'Bitcoin', 'BTC', 100 + i % 97, 'csv',
       timestamptz '2015-01-01' + i * interval '1 hour', 0
FROM generate_series(0, $1 - 1) AS i
"""
REWRITE = "UPDATE unified_crypto_data SET price_usd = price_usd * 1.01"


def functions_of_0013() -> str:
    """0013's unified_hourly_note and unified_hourly_settle, as CREATE OR REPLACE."""
    text = (default_directory() / "0013_hourly_rollups.sql").read_text()
    found = [
        re.search(rf"CREATE FUNCTION {name}\(\).*?\n\$\$;", text, re.DOTALL)
        for name in ("unified_hourly_note", "unified_hourly_settle")
    ]
    if not all(found):
        raise SystemExit("0013_hourly_rollups.sql no longer has both functions")
    return "\n".join(m.group(0).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
                     for m in found if m)  # fmt: skip


async def one_round(server_url: str, name: str, size: int, old: bool) -> tuple[float, float]:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(server_url.replace("/postgres?", f"/{name}?"))
    try:
        await migrate(conn)
        if old:
            await conn.execute(functions_of_0013())
        await conn.execute(SEED, size)
        await conn.execute("ANALYZE unified_crypto_data")
        await conn.execute("BEGIN")
        began = time.perf_counter()
        await conn.execute(REWRITE)
        updated = time.perf_counter()
        await conn.execute("COMMIT")
        committed = time.perf_counter()
        assert await conn.fetchval("SELECT count(*) FROM unified_hourly_pending") == 0
        settled = await conn.fetchval(
            "SELECT count(*) FROM unified_hourly AS h JOIN unified_crypto_data AS u"
            " ON (u.source, u.coin_id, u.observed_at) = (h.source, h.coin_id, h.hour)"
            " WHERE h.high = u.price_usd AND h.count = 1"
        )
        assert settled == size, (settled, size)  # every hour was settled to its new price
    finally:
        await conn.close()
    return updated - began, committed - updated


async def run(args: argparse.Namespace) -> None:
    kinds = [("0022", False), ("0013", True)] if args.compare else [("0022", False)]
    with tempfile.TemporaryDirectory(prefix="cryptoetl-settle-") as tmp:
        os.chmod(tmp, 0o755)  # noqa: S103 - the embedded server runs as its own user
        server = EmbeddedPostgres(Path(tmp), server_parameters(128))
        url = await asyncio.to_thread(server.start)
        try:
            print("| functions | hours rewritten | UPDATE s | COMMIT s | COMMIT / UPDATE |")
            print("|---|---:|---:|---:|---:|")
            for size in args.sizes:
                for kind, old in kinds:
                    rounds = [
                        await one_round(url, f"settle_{kind}_{size}", size, old)
                        for _ in range(args.repeat)
                    ]
                    update = statistics.median(r[0] for r in rounds)
                    commit = statistics.median(r[1] for r in rounds)
                    print(
                        f"| {kind} | {size:,} | {update:.3f} | {commit:.3f} "
                        f"| {commit / update:.2f} |",
                        flush=True,
                    )
        finally:
            await asyncio.to_thread(server.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8000, 32000, 128000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare", action="store_true", help="also with 0013's functions")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
