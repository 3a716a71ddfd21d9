"""The state of the asset mapping: coins seen, assets, pins, decisions. Queries only.

Every function takes a connection inside the caller's transaction (`cryptoetl.assets.sync`
owns it, and takes `lock` first, so two processes never decide at once).

Finding coins is cheap on a large table: the distinct coin ids of a source come from a loose
index scan of the unique index `(source, coin_id, observed_at)` (one probe per coin, not one
row per observation), and a coin's name and symbol from its newest observation that has them
(a backward scan of the same index that stops at the first hit).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

import orjson

from cryptoetl.db.pool import Connection
from cryptoetl.models import Asset, Coin, Decision, Method, Pin

# pg_advisory_xact_lock key: the first 8 bytes of sha256("cryptoetl.assets") as a signed bigint.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"cryptoetl.assets").digest()[:8], "big", signed=True)


_COINS = """
WITH RECURSIVE walk AS (
    (SELECT u.coin_id FROM unified_crypto_data AS u
      WHERE u.source = $1 ORDER BY u.coin_id LIMIT 1)
    UNION ALL
    SELECT n.coin_id FROM walk AS w CROSS JOIN LATERAL (
        SELECT u.coin_id FROM unified_crypto_data AS u
         WHERE u.source = $1 AND u.coin_id > w.coin_id ORDER BY u.coin_id LIMIT 1
    ) AS n
), p AS (
    SELECT $1::text AS source, walk.coin_id FROM walk
     WHERE NOT $2::boolean OR NOT EXISTS (
        SELECT 1 FROM asset_mappings AS m WHERE m.source = $1 AND m.coin_id = walk.coin_id)
)
SELECT p.coin_id, e.name, e.symbol FROM p
    CROSS JOIN LATERAL (
        (SELECT u.name, u.symbol FROM unified_crypto_data AS u
          WHERE u.source = p.source AND u.coin_id = p.coin_id
            AND u.name IS NOT NULL AND u.symbol IS NOT NULL
          ORDER BY u.observed_at DESC LIMIT 1)
        UNION ALL
        (SELECT u.name, u.symbol FROM unified_crypto_data AS u
          WHERE u.source = p.source AND u.coin_id = p.coin_id AND u.symbol IS NOT NULL
          ORDER BY u.observed_at DESC LIMIT 1)
        UNION ALL
        (SELECT u.name, u.symbol FROM unified_crypto_data AS u
          WHERE u.source = p.source AND u.coin_id = p.coin_id AND u.name IS NOT NULL
          ORDER BY u.observed_at DESC LIMIT 1)
        UNION ALL
        SELECT NULL::text, NULL::text
        LIMIT 1
    ) AS e
ORDER BY p.coin_id
"""


async def lock(conn: Connection) -> None:
    """Hold the mapping lock until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)


async def coins_in_data(conn: Connection, sources: Sequence[str], *, only_new: bool) -> list[Coin]:
    """Every coin of `sources` in the unified table (only those with no mapping row yet, when
    `only_new`), with the name and symbol of its newest observation that has both (else the
    newest with either)."""
    coins: list[Coin] = []
    for source in sources:
        rows = await conn.fetch(_COINS, source, only_new)
        coins.extend(Coin(source, row["coin_id"], row["name"], row["symbol"]) for row in rows)
    return coins


async def mapped_coins(conn: Connection) -> list[Coin]:
    """Every coin with a mapping row, with the name and symbol it was last decided on."""
    rows = await conn.fetch("SELECT source, coin_id, name, symbol FROM asset_mappings")
    return [Coin(row["source"], row["coin_id"], row["name"], row["symbol"]) for row in rows]


async def assets(conn: Connection) -> list[Asset]:
    rows = await conn.fetch("SELECT asset_id, symbol, name, derivative, origin FROM assets")
    return [
        Asset(r["asset_id"], r["symbol"], r["name"], r["derivative"], Method(r["origin"]))
        for r in rows
    ]


async def pins(conn: Connection) -> dict[tuple[str, str], Pin]:
    """The pin in force for each pinned coin: an admin pin where there is one, else the file's."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT ON (source, coin_id) source, coin_id, asset_id, origin, note
        FROM asset_pins ORDER BY source, coin_id, origin = 'admin' DESC
        """
    )
    return {
        (r["source"], r["coin_id"]): Pin(r["asset_id"], Method(r["origin"]), r["note"])
        for r in rows
    }


async def insert_assets(conn: Connection, new: Iterable[Asset]) -> int:
    """Add assets that do not exist yet; an existing id keeps its row. Returns how many."""
    items = list(new)
    if not items:
        return 0
    result = await conn.fetch(
        """
        INSERT INTO assets (asset_id, symbol, name, derivative, origin)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::text[])
        ON CONFLICT (asset_id) DO NOTHING
        RETURNING asset_id
        """,
        [a.asset_id for a in items],
        [a.symbol for a in items],
        [a.name for a in items],
        [a.derivative for a in items],
        [a.origin.value for a in items],
    )
    return len(result)


async def replace_file_pins(conn: Connection, file_pins: Mapping[tuple[str, str], Pin]) -> int:
    """Make the `file` pins exactly `file_pins`; returns how many rows changed."""
    keys = sorted(file_pins)
    deleted = await conn.fetch(
        """
        DELETE FROM asset_pins AS p WHERE origin = 'file' AND NOT EXISTS (
            SELECT 1 FROM unnest($1::text[], $2::text[]) AS k(source, coin_id)
             WHERE k.source = p.source AND k.coin_id = p.coin_id)
        RETURNING 1
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    written = await conn.fetch(
        """
        INSERT INTO asset_pins AS p (source, coin_id, origin, asset_id, note)
        SELECT source, coin_id, 'file', asset_id, note
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
             AS k(source, coin_id, asset_id, note)
        ON CONFLICT (source, coin_id, origin) DO UPDATE
            SET asset_id = EXCLUDED.asset_id, note = EXCLUDED.note, pinned_at = now()
            WHERE (p.asset_id, p.note) IS DISTINCT FROM (EXCLUDED.asset_id, EXCLUDED.note)
        RETURNING 1
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [file_pins[k].asset_id for k in keys],
        [file_pins[k].note for k in keys],
    )
    return len(deleted) + len(written)


async def set_admin_pin(
    conn: Connection, source: str, coin_id: str, asset_id: str | None, note: str | None
) -> None:
    await conn.execute(
        """
        INSERT INTO asset_pins (source, coin_id, origin, asset_id, note)
        VALUES ($1, $2, 'admin', $3, $4)
        ON CONFLICT (source, coin_id, origin) DO UPDATE
            SET asset_id = EXCLUDED.asset_id, note = EXCLUDED.note, pinned_at = now()
        """,
        source,
        coin_id,
        asset_id,
        note,
    )


async def delete_admin_pin(conn: Connection, source: str, coin_id: str) -> bool:
    """Remove the admin pin of a coin; False when it had none."""
    status = await conn.execute(
        "DELETE FROM asset_pins WHERE source = $1 AND coin_id = $2 AND origin = 'admin'",
        source,
        coin_id,
    )
    return status != "DELETE 0"


async def write_decisions(
    conn: Connection, decisions: Sequence[Decision], coins: Mapping[tuple[str, str], Coin]
) -> int:
    """Store every decision with the name and symbol it was made on; a row whose decision is
    unchanged is not rewritten, and `decided_at` moves only when the asset, rule or method
    changes. Returns how many rows were inserted or changed."""
    if not decisions:
        return 0
    evidence = [coins[(d.source, d.coin_id)] for d in decisions]
    rows = await conn.fetch(
        """
        INSERT INTO asset_mappings AS m
            (source, coin_id, asset_id, name, symbol, rule, confidence, method, reason, evidence)
        SELECT source, coin_id, asset_id, name, symbol, rule, confidence, method, reason,
               evidence::jsonb
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::float8[], $8::text[], $9::text[], $10::text[])
             AS d(source, coin_id, asset_id, name, symbol, rule, confidence, method, reason,
                  evidence)
        ON CONFLICT (source, coin_id) DO UPDATE SET
            asset_id = EXCLUDED.asset_id, name = EXCLUDED.name, symbol = EXCLUDED.symbol,
            rule = EXCLUDED.rule, confidence = EXCLUDED.confidence, method = EXCLUDED.method,
            reason = EXCLUDED.reason, evidence = EXCLUDED.evidence,
            decided_at = CASE
                WHEN (m.asset_id, m.rule, m.method)
                     IS DISTINCT FROM (EXCLUDED.asset_id, EXCLUDED.rule, EXCLUDED.method)
                THEN now() ELSE m.decided_at END
        WHERE (m.asset_id, m.name, m.symbol, m.rule, m.confidence, m.method, m.reason,
               m.evidence)
              IS DISTINCT FROM
              (EXCLUDED.asset_id, EXCLUDED.name, EXCLUDED.symbol, EXCLUDED.rule,
               EXCLUDED.confidence, EXCLUDED.method, EXCLUDED.reason, EXCLUDED.evidence)
        RETURNING 1
        """,
        [d.source for d in decisions],
        [d.coin_id for d in decisions],
        [d.asset_id for d in decisions],
        [c.name for c in evidence],
        [c.symbol for c in evidence],
        [d.rule.value for d in decisions],
        [d.confidence for d in decisions],
        [d.method.value for d in decisions],
        [d.reason for d in decisions],
        [orjson.dumps(d.evidence).decode() for d in decisions],
    )
    return len(rows)
