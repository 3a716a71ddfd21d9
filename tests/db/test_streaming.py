"""The export response on its own: chunked from a server-side cursor, never whole in memory."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.types import Message

from cryptoetl.api.streaming import CHUNK_ROWS, EXPORT_SLOTS, RowStream
from cryptoetl.db.data import stream_statement
from cryptoetl.db.data_query import DataFilters, build_query
from cryptoetl.db.pool import Pool
from cryptoetl.db.replica import ReadPool
from tests.support.api_data import load_rows


async def test_an_export_is_sent_one_chunk_at_a_time(pool: Pool) -> None:
    """5,000 rows leave as ceil(5000 / CHUNK_ROWS) body messages, then an empty final one."""
    total = await load_rows(pool, coins=50, steps=50)
    query = build_query(
        filters=DataFilters(), sort="-observed_at", page=None, page_size=100, cursor=None
    )
    sql, args = stream_statement(query, as_json=False, limited=False)
    messages: list[Message] = []

    received: list[bool] = []
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        # as a server does: the (empty) request body once, then nothing until a disconnect
        if received:
            await never.wait()
        received.append(True)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    slots = asyncio.Semaphore(1)
    await RowStream(ReadPool(pool), sql, args, "csv", slots)({"type": "http"}, receive, send)
    start, *bodies = messages
    assert start["status"] == 200
    assert (b"content-type", b"text/csv; charset=utf-8") in start["headers"]
    assert not any(name == b"content-length" for name, _ in start["headers"])
    assert len(bodies) == -(-total // CHUNK_ROWS) + 1
    assert bodies[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    lines = b"".join(m["body"] for m in bodies).decode().splitlines()
    assert len(lines) == total + 1
    assert all(len(m["body"].splitlines()) <= CHUNK_ROWS + 1 for m in bodies)
    times = [line.split(",")[-1] for line in lines[1:]]
    assert times == sorted(times, reverse=True)


async def test_exports_beyond_the_slots_answer_503(client: httpx.AsyncClient) -> None:
    """While every export slot is taken, another export is a 503 JSON with Retry-After."""
    slots: asyncio.Semaphore = client.app.state.export_slots  # type: ignore[attr-defined]
    for _ in range(EXPORT_SLOTS):
        await slots.acquire()
    busy = await client.get("/api/v1/data", params={"format": "csv"})
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "5"
    assert busy.json()["detail"] == f"{EXPORT_SLOTS} exports are already running; retry shortly"
    slots.release()
    assert (await client.get("/api/v1/data", params={"format": "csv"})).status_code == 200
