"""What the CSV path makes of a file, as digests: the golden record both CSV paths must match.

    .venv/bin/python -m tests.support.csv_golden   # rewrites tests/fixtures/csv_golden.json

Per fixture file: the accepted and rejected counts, and a SHA-256 over every accepted row
(line, coin, name, symbol, each number as `float.hex`, the observation time) and over every
rejection (locator, line, reason, raw text), in line order. The JSON committed beside the
fixtures was recorded from the row-by-row path the columnar one replaced.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from tests.support import FIXTURES

GOLDEN = FIXTURES / "csv_golden.json"

# (line, coin_id, name, symbol, price, market_cap, volume, observed_at)
AcceptedRow = tuple[int, str, str | None, str | None, float, float | None, float | None, datetime]
# (line, locator, reason, raw)
RejectedRow = tuple[int, str, str, str]


def _hex(value: float | None) -> str | None:
    return None if value is None else float(value).hex()


def digest(accepted: Iterable[AcceptedRow], rejected: Iterable[RejectedRow]) -> dict[str, object]:
    """Counts and digests of one file's outcome (any order in; sorted by line)."""
    good = sorted(accepted, key=lambda row: row[0])
    bad = sorted(rejected, key=lambda row: (row[0], row[1]))
    good_hash = hashlib.sha256()
    for line, coin, name, symbol, price, cap, volume, at in good:
        record = [line, coin, name, symbol, _hex(price), _hex(cap), _hex(volume), at.isoformat()]
        good_hash.update(json.dumps(record).encode() + b"\n")
    bad_hash = hashlib.sha256()
    for row in bad:
        bad_hash.update(json.dumps(list(row)).encode() + b"\n")
    return {
        "accepted": len(good),
        "rejected": len(bad),
        "accepted_sha256": good_hash.hexdigest(),
        "rejected_sha256": bad_hash.hexdigest(),
        "first_reasons": [row[2] for row in bad[:3]],
    }


def fixture_files() -> Sequence[Path]:
    return sorted((FIXTURES / "csv").glob("*.csv"))


async def _row_by_row(path: Path) -> dict[str, object]:  # pragma: no cover - the recorder
    """The row-by-row path (before issue 16): fetch, then `transform` per item."""
    from cryptoetl.models import Accepted
    from cryptoetl.sources import load_settings
    from cryptoetl.sources.base import SourceContext
    from cryptoetl.sources.csv_source import CsvSource

    source = CsvSource(SourceContext(load_settings(env_file=None, csv_file_path=str(path))))
    accepted: list[AcceptedRow] = []
    rejected: list[RejectedRow] = []
    async for batch in source.fetch({}):
        for item in batch.items:
            result = source.transform(item, batch)
            if isinstance(result, Accepted):
                r = result.record
                line = result.locator.line or 0
                accepted.append(
                    (
                        line,
                        r.coin_id,
                        r.name,
                        r.symbol,
                        r.price_usd,
                        r.market_cap,
                        r.volume_24h,
                        r.observed_at,
                    )
                )
            else:
                rejected.append((result.line or 0, result.locator, result.reason, result.raw))
    return digest(accepted, rejected)


async def _record() -> None:  # pragma: no cover - the recorder
    golden = {path.name: await _row_by_row(path) for path in fixture_files()}
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_record())
