"""Keeping the asset mapping current: one transaction that decides every coin again.

    report = await sync_assets(pool, sources=["coingecko"])    # the pipeline, after a run
    report = await sync_assets(pool, refresh=True)             # `cryptoetl assets rebuild`

`update_mappings(conn, ...)` is the step itself, inside the caller's transaction (the admin
API runs it after writing a pin, in the same transaction):

1. take the mapping lock (a transaction-level advisory lock: concurrent runs wait their turn);
2. bring the shipped overrides into the database (declared assets, `file` pins);
3. find the coins of `sources` that have no mapping row yet (or, with `refresh`, read every
   coin's name and symbol again from its newest observation);
4. when anything is new or changed (or `force`), run the matcher over every coin ever seen,
   every asset and every pin, store the assets it made and every decision that changed.

The pipeline runs it at the end of every source run that committed data, in its own
transaction, so the per-batch path pays nothing; with no new coin it costs one index walk.
Idempotent: a second call with nothing new changes nothing.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptoetl.assets.match import match
from cryptoetl.assets.overrides import Overrides, load_overrides
from cryptoetl.db import asset_map, source_status
from cryptoetl.db.pool import Connection, Pool
from cryptoetl.models import Coin
from cryptoetl.sources import REGISTRY
from cryptoetl.sources.registry import Registry


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one update did. `decided` is False when nothing was new and nothing was decided."""

    decided: bool
    new_coins: int = 0
    changed: int = 0
    assets_created: int = 0
    mapped: int = 0
    unmapped: int = 0
    unmapped_by_rule: dict[str, int] = field(default_factory=dict)


async def update_mappings(
    conn: Connection,
    overrides: Overrides,
    *,
    sources: Sequence[str] | None = None,
    refresh: bool = False,
    force: bool = False,
    registry: Registry = REGISTRY,
) -> SyncReport:
    """Steps 1-4 of the module docstring, inside the caller's transaction."""
    await asset_map.lock(conn)
    created = await asset_map.insert_assets(conn, overrides.assets)
    pins_changed = await asset_map.replace_file_pins(conn, overrides.pins)
    names = list(sources) if sources is not None else await source_status.sources_with_rows(conn)
    seen = await asset_map.coins_in_data(conn, names, only_new=not refresh)
    new_count = len(seen)
    mapped = await asset_map.mapped_coins(conn) if refresh else None
    if mapped is not None:
        known = {(c.source, c.coin_id) for c in mapped}
        new_count = sum((c.source, c.coin_id) not in known for c in seen)
    if not (seen or created or pins_changed or force):
        return SyncReport(decided=False)
    if mapped is None:
        mapped = await asset_map.mapped_coins(conn)
    coins: dict[tuple[str, str], Coin] = {(c.source, c.coin_id): c for c in mapped}
    coins.update(((c.source, c.coin_id), c) for c in seen)
    assets, pins = await asset_map.assets(conn), await asset_map.pins(conn)
    # the matcher is pure CPU work over every coin ever seen (seconds for a large first CSV
    # load): in a worker thread, so the event loop (and the API sharing it) is not held
    result = await asyncio.to_thread(match, list(coins.values()), assets, pins, registry=registry)
    created += await asset_map.insert_assets(conn, result.new_assets)
    changed = await asset_map.write_decisions(conn, result.decisions, coins)
    unmapped = Counter(d.rule.value for d in result.decisions if d.asset_id is None)
    return SyncReport(
        decided=True,
        new_coins=new_count,
        changed=changed,
        assets_created=created,
        mapped=len(result.decisions) - sum(unmapped.values()),
        unmapped=sum(unmapped.values()),
        unmapped_by_rule=dict(sorted(unmapped.items())),
    )


async def sync_assets(
    pool: Pool,
    *,
    sources: Sequence[str] | None = None,
    refresh: bool = False,
    force: bool = False,
    overrides: Overrides | None = None,
    registry: Registry = REGISTRY,
) -> SyncReport:
    """`update_mappings` in a transaction of its own (default overrides: the shipped file)."""
    if overrides is None:
        overrides = await asyncio.to_thread(load_overrides)
    async with pool.acquire() as conn, conn.transaction():
        return await update_mappings(
            conn, overrides, sources=sources, refresh=refresh, force=force, registry=registry
        )
