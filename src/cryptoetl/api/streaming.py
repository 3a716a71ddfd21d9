"""CSV and NDJSON exports of `/api/v1/data`: every matching row, never all in memory.

`RowStream` is a response that runs its own query: it takes a pooled connection, opens a
read-only transaction and a server-side cursor, and fetches the first chunk *before* sending
the status line, so a database that is down still answers 503 JSON. After that it sends one
chunk at a time (memory stays at one chunk), stops early when the client goes away, and on a
failure mid-stream drops the connection rather than end the body cleanly, so a client can
never mistake a truncated export for a complete one.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from cryptoetl.db.data import COLUMNS, stream_rows
from cryptoetl.db.replica import ReadPool

log = structlog.get_logger(__name__)

CHUNK_ROWS = 2000
# Exports hold a pooled connection for as long as they run; beyond this many at once the
# rest of the API (health included) would wait for connections, so another one gets a 503.
EXPORT_SLOTS = 4
# what a browser or `curl -OJ` saves an export as
FILE_NAME = "cryptoetl-data"
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
}
_ACCEPTED = {
    "application/json": "json",
    "text/csv": "csv",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
}


def negotiate(explicit: str | None, accept: str | None) -> str:
    """`format` wins; else the `Accept` media type we serve with the highest q; else JSON."""
    if explicit is not None:
        return explicit
    if not accept:
        return "json"
    best, best_q = "json", 0.0
    for position, part in enumerate(accept.split(",")):
        media, *params = (piece.strip() for piece in part.split(";"))
        chosen = _ACCEPTED.get(media.lower())
        if chosen is None:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        # earlier entries win ties, as a client lists what it prefers first
        if q > best_q or (q == best_q and position == 0):
            best, best_q = chosen, q
    return best


def render_csv(rows: Sequence[asyncpg.Record], header: bool) -> bytes:
    """Rows of cell texts (`db.data.csv_columns`; NULL is an empty cell) as CSV lines."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(COLUMNS)
    writer.writerows(rows)
    return out.getvalue().encode()


def render_ndjson(rows: Sequence[asyncpg.Record]) -> bytes:
    return "".join(f"{row[0]}\n" for row in rows).encode()


class RowStream(Response):
    """Streams the rows of `sql` as CSV (with a header line) or NDJSON."""

    def __init__(
        self, pool: ReadPool, sql: str, args: Sequence[Any], fmt: str, slots: asyncio.Semaphore
    ) -> None:
        super().__init__(
            media_type=MEDIA_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="{FILE_NAME}.{fmt}"'},
        )
        self.pool = pool
        self.slots = slots
        self.sql = sql
        self.args = args
        self.fmt = fmt

    def _render(self, rows: Sequence[asyncpg.Record], first: bool) -> bytes:
        return render_csv(rows, header=first) if self.fmt == "csv" else render_ndjson(rows)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.slots.locked():
            raise HTTPException(
                503,
                f"{EXPORT_SLOTS} exports are already running; retry shortly",
                headers={"Retry-After": "5"},
            )
        async with self.slots:
            await self._stream(receive, send)

    async def _stream(self, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch_disconnect())
        sent = 0
        try:
            async with (
                self.pool.acquire() as conn,
                conn.transaction(readonly=True),
                contextlib.aclosing(stream_rows(conn, self.sql, self.args, CHUNK_ROWS)) as chunks,
            ):
                first: list[asyncpg.Record] = await anext(chunks, [])
                # Everything above may still fail into a clean JSON error; from here on the
                # status line is out.
                self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
                await send(
                    {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                )
                body = self._render(first, first=True)
                sent += len(first)
                await send({"type": "http.response.body", "body": body, "more_body": True})
                async for rows in chunks:
                    if gone.is_set():
                        log.info("export_abandoned", rows_sent=sent)
                        return
                    sent += len(rows)
                    body = self._render(rows, first=False)
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
