"""Hostile requests against a real `cryptoetl serve`: a 20 MB body without a token is refused
fast and costs no memory; a request line uvicorn cannot parse still gets a JSON answer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import psutil

from tests.support.process import ServeProcess

TOKEN = "adm1n-t0ken-for-tests"
MB = 1024 * 1024


async def raw_request(
    base_url: str, head: bytes, body_size: int = 0, *, answer_first: bool = True
) -> tuple[bytes, float]:
    """Send `head`, then `body_size` bytes: after reading the answer (`answer_first`: the
    server must answer before any body arrives), or at once, as an attacker would. The answer
    (empty when the server reset the connection before it could be read) and the seconds until
    its first byte."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    started = time.monotonic()
    writer.write(head)

    async def send_body() -> None:
        chunk = b"x" * 65536
        try:
            for _ in range(body_size // len(chunk)):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # the server answered and closed without reading it: the point

    sender = None if answer_first else asyncio.create_task(send_body())
    answer = b""
    waited = 0.0
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), timeout=10):
            if not answer:
                waited = time.monotonic() - started
            answer += chunk
    except (ConnectionError, OSError):
        pass  # the server closed first; what it sent is in `answer`
    if sender is None:
        await send_body()
    else:
        await sender
    writer.close()
    return answer, waited


def split(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


async def test_a_20_mb_post_without_a_token_is_refused_fast_and_costs_no_memory(
    serve: Callable[..., ServeProcess], db_url: str
) -> None:
    served = serve({"DATABASE_URL": db_url, "ADMIN_TOKEN": TOKEN, "ETL_RUN_ON_STARTUP": "false"})
    process = psutil.Process(served.process.pid)
    before = process.memory_info().rss
    size = 20 * MB
    head = (
        b"POST /admin/etl/run HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(size).encode() + b"\r\n\r\n"
    )
    # an attacker's way: the whole body at once, four connections together
    await asyncio.gather(
        *(raw_request(served.base_url, head, size, answer_first=False) for _ in range(4))
    )
    grown = process.memory_info().rss - before
    assert grown < 50 * MB, f"the service grew by {grown / MB:.1f} MB"
    # the answer comes before any of the body was sent: nothing of it was waited for
    answer, waited = await raw_request(served.base_url, head, size)
    status, headers, body = split(answer)
    assert status == 401
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["request_id"] == headers["x-request-id"]
    assert waited < 2.0
    assert process.memory_info().rss - before < 50 * MB
    # with the token, a body over API_MAX_BODY_KB is 413 from its length alone
    authed = head.replace(
        b"Host: t\r\n", b"Host: t\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n"
    )
    status, headers, body = split((await raw_request(served.base_url, authed, size))[0])
    assert status == 413
    assert json.loads(body)["error"] == "payload_too_large"


async def test_a_raw_non_ascii_byte_in_the_request_line_gets_json(
    serve: Callable[..., ServeProcess], db_url: str
) -> None:
    served = serve({"DATABASE_URL": db_url, "ETL_RUN_ON_STARTUP": "false"})
    answer, _ = await raw_request(
        served.base_url, b"GET /api/v1/health\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    status, headers, body = split(answer)
    assert status == 400
    assert headers["content-type"] == "application/json"
    parsed = json.loads(body)
    assert parsed["error"] == "bad_request"
    assert parsed["request_id"] == headers["x-request-id"]
