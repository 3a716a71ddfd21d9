"""The contract every source in REGISTRY keeps, checked the same way for each.

A new source adds its set-up to SETUPS (how to point it at a loopback or on-disk input); a
source without one fails here until it does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import pytest

from cryptoetl.config import Settings
from cryptoetl.errors import SourceError
from cryptoetl.models import Batch, Rejection, SourceRecord
from cryptoetl.sources import REGISTRY
from cryptoetl.transform.csv_columns import FileRows
from tests.support import FIXTURES
from tests.support.process import free_port
from tests.support.sourcing import make_source, run_source

MakeSettings = Callable[..., Settings]


@dataclass(frozen=True)
class ContractSetup:
    """Setting overrides (on top of `source_settings`) that make a source work, or fail."""

    working: Callable[[], dict[str, Any]]
    no_answer: Callable[[], dict[str, Any]]


def _dead_url(path: str) -> Callable[[], str]:
    return lambda: f"http://127.0.0.1:{free_port()}{path}"


SETUPS: dict[str, ContractSetup] = {
    "coingecko": ContractSetup(
        working=dict, no_answer=lambda: {"coingecko_base_url": _dead_url("/api/v3")()}
    ),
    "coinpaprika": ContractSetup(
        working=dict, no_answer=lambda: {"coinpaprika_base_url": _dead_url("/v1")()}
    ),
    "csv": ContractSetup(
        working=lambda: {"csv_file_path": str(FIXTURES / "csv" / "csv_kaggle_coin_Aave.csv")},
        no_answer=lambda: {"csv_file_path": str(FIXTURES / "csv" / "no_such_file.csv")},
    ),
}

SOURCES = sorted(REGISTRY.names)


@pytest.mark.parametrize("name", SOURCES)
async def test_a_source_yields_its_named_batches_of_records(
    name: str, source_settings: MakeSettings
) -> None:
    """fetch yields Batches under the source's name with records, meta and a JSON cursor."""
    assert name in SETUPS, f"add a contract set-up for source {name!r} to SETUPS"
    source = make_source(name, source_settings(**SETUPS[name].working()))
    assert source.info.name == name
    outcome = await run_source(source)
    assert outcome.batches, "a source that got an answer yields at least one batch"
    for batch in outcome.batches:
        assert isinstance(batch, Batch)
        assert batch.source == name
        assert batch.label
        assert batch.meta.status == 200
        assert batch.meta.fetched_at.tzinfo is not None
        json.dumps(dict(batch.cursor))  # committed as jsonb: must be JSON
        assert all(isinstance(item, SourceRecord) for item in batch.items)
    columns = sum(b.columns.fetched for b in outcome.batches if isinstance(b.columns, FileRows))
    assert len(outcome.accepted) == sum(len(b.items) for b in outcome.batches) + columns


@pytest.mark.parametrize("name", SOURCES)
async def test_accepted_records_are_keyed_by_coin_and_own_time(
    name: str, source_settings: MakeSettings
) -> None:
    """Accepted records carry the source name, a UTC observed_at and a raw locator.

    The locator is the coin id and its own timestamp for an API, the file and line for a file.
    """
    outcome = await run_source(make_source(name, source_settings(**SETUPS[name].working())))
    assert outcome.accepted
    for accepted in outcome.accepted:
        record = accepted.record
        assert record.source == name
        assert record.coin_id
        assert record.observed_at.tzinfo is not None
        assert record.observed_at.utcoffset() == UTC.utcoffset(None)
        assert record.price_usd >= 0
        assert accepted.locator.key
        if accepted.locator.line is None:
            assert accepted.locator.key == record.coin_id
            assert accepted.locator.at == record.observed_at
        else:  # a file's data line: the header is line 1
            assert accepted.locator.line >= 2


@pytest.mark.parametrize("name", SOURCES)
@pytest.mark.parametrize(
    "payload",
    [{}, {"id": None}, {"id": 5, "last_updated": [], "quotes": "x"}, {"current_price": "NaN"}],
)
async def test_transform_rejects_garbage_without_raising(
    name: str, payload: dict[str, object], source_settings: MakeSettings
) -> None:
    """transform turns any malformed record into a Rejection with a reason, never an exception."""
    source = make_source(name, source_settings(**SETUPS[name].working()))
    outcome = await run_source(source)
    batch = outcome.batches[0]
    result = source.transform(SourceRecord(payload=payload, position=3), batch)
    assert isinstance(result, Rejection)
    assert result.reason
    assert "3" in result.locator
    assert json.loads(result.raw) == payload


@pytest.mark.parametrize("name", SOURCES)
async def test_a_source_that_gets_no_answer_raises(
    name: str, source_settings: MakeSettings
) -> None:
    """An unreachable upstream is an error, never an empty success."""
    settings = source_settings(max_retries=1, **SETUPS[name].no_answer())
    source = make_source(name, settings)
    with pytest.raises(SourceError) as caught:
        await run_source(source)
    assert caught.value.source == name
    assert str(caught.value)
