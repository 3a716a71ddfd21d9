"""Loopback stand-ins for CoinGecko and CoinPaprika: real aiohttp.web servers on 127.0.0.1.

They serve the recorded payloads in `tests/fixtures/` and take a fault program per API:

    upstream.program("coingecko", rate_limited("2"), server_error(503))   # then normal answers
    upstream.delay["coinpaprika"] = 1.0             # every request answered 1 s late
    upstream.renamed["coingecko"] = {"current_price": "price"}
    upstream.valid_keys["coingecko"] = {"good-key"} # other keys: 401 (CoinPaprika: 403)

and record every request (`upstream.requests`: api, path, query, headers, arrival times,
status). Routes: `/api/v3/coins/markets`, `/api/v3/ping` (CoinGecko), `/v1/tickers`
(CoinPaprika), and the history endpoints of `tests/support/upstream_history.py`
(`/api/v3/coins/{id}/market_chart/range`, `/v1/coins/{id}/ohlcv/historical`). Page 1 of
`/coins/markets` is the real 250-coin recording; pages 2..N are
synthetic copies (see tests/fixtures/README.md) up to `coingecko_pages`, then `[]`.

For a demo without internet: `python -m tests.support.upstream --port 9000`, then point
COINGECKO_BASE_URL at http://127.0.0.1:9000/api/v3 and COINPAPRIKA_BASE_URL at
http://127.0.0.1:9000/v1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from aiohttp import web

from tests.support import FIXTURES
from tests.support.upstream_history import Candles, HistoryError, coingecko_series

COINGECKO_PAGE_1 = (
    FIXTURES / "coingecko" / "coingecko_coins_markets_usd_per250_p1_2025-02-09_raw.json"
)
COINGECKO_429 = FIXTURES / "coingecko" / "coingecko_error_429_body_2022-09-29.json"
COINPAPRIKA_TICKERS = FIXTURES / "coinpaprika" / "tickers_usd.json"
APIS = ("coingecko", "coinpaprika")
JSON_TYPE = "application/json; charset=utf-8"
CLOUDFLARE_429 = b"""<!DOCTYPE html>
<html lang="en-US"><head><title>Access denied | api.coingecko.com used Cloudflare to restrict
access</title></head><body><h1>Error 1015</h1><p>You are being rate limited</p>
<p>Ray ID: 90f5aa621f77f7a9</p></body></html>"""


@dataclass(frozen=True)
class Fault:
    """One scripted answer: a status with a body, a hang, a delay, or a mangled real body."""

    kind: str
    status: int = 200
    body: bytes | None = None
    content_type: str = JSON_TYPE
    headers: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def ok() -> Fault:
    """The normal answer."""
    return Fault("ok")


def status(
    code: int,
    body: bytes | None = None,
    *,
    content_type: str = JSON_TYPE,
    retry_after: str | None = None,
) -> Fault:
    """Answer `code` with `body` (default: a JSON error naming the status)."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    if body is None:
        body = json.dumps({"error": f"scripted {code}"}).encode()
    return Fault("status", code, body, content_type, headers)


def rate_limited(retry_after: str | None = None) -> Fault:
    """A JSON 429 (CoinGecko's real 429 body), with or without Retry-After."""
    return status(429, COINGECKO_429.read_bytes(), retry_after=retry_after)


def cloudflare_429() -> Fault:
    """A Cloudflare-style HTML 429 page with no Retry-After."""
    return status(429, CLOUDFLARE_429, content_type="text/html; charset=UTF-8")


def server_error(code: int = 500) -> Fault:
    """A 5xx with a short JSON body."""
    return status(code, json.dumps({"error": f"upstream {code}"}).encode())


def hang(seconds: float = 30.0) -> Fault:
    """Accept the request and say nothing for `seconds` (ended early when the server stops)."""
    return Fault("hang", seconds=seconds)


def truncated() -> Fault:
    """A 200 whose body is the first half of the real JSON (with a matching length)."""
    return Fault("truncated")


def disconnect_mid_body() -> Fault:
    """Promise the full body, send half of it, then drop the connection."""
    return Fault("disconnect")


def bom() -> Fault:
    """The real JSON preceded by a UTF-8 byte order mark."""
    return Fault("bom")


def not_a_list() -> Fault:
    """A 200 with a JSON object where the API promises an array."""
    body = json.dumps({"status": {"error_code": 0, "error_message": "not what you wanted"}})
    return status(200, body.encode())


def empty_list() -> Fault:
    """A 200 with `[]`: an API with nothing to list (where it always has something)."""
    return status(200, b"[]")


def html_ok() -> Fault:
    """A 200 with an HTML page (a captive portal or a misrouted proxy)."""
    return status(
        200, b"<html><head><title>Welcome</title></head></html>", content_type="text/html"
    )


@dataclass
class Request:
    """One request as the upstream saw it."""

    api: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float
    wall: float
    status: int | None = None


def rename(record: dict[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
    """Rename (dotted) fields of `record`: `{"quotes.USD.price": "value"}`."""
    record = copy.deepcopy(record)
    for dotted, new in renames.items():
        *parents, last = dotted.split(".")
        node: Any = record
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            node[new] = node.pop(last)
    return record


def synthetic_page(page_1: list[dict[str, Any]], page: int) -> list[dict[str, Any]]:
    """Page `page` derived from page 1: distinct ids, marked names, shifted ranks."""
    out = []
    for record in page_1:
        item = dict(record)
        item["id"] = f"synthetic-p{page}-{record['id']}"
        item["name"] = f"{record['name']} (synthetic p{page})"
        if isinstance(record.get("market_cap_rank"), int):
            item["market_cap_rank"] = record["market_cap_rank"] + 250 * (page - 1)
        out.append(item)
    return out


class Upstream:
    """Both fake APIs on one aiohttp application; start it in a test or run it by hand."""

    def __init__(self, coingecko_pages: int = 1) -> None:
        self.coingecko_pages = coingecko_pages
        self.page_1: list[dict[str, Any]] = json.loads(COINGECKO_PAGE_1.read_bytes())
        self.tickers: list[dict[str, Any]] = json.loads(COINPAPRIKA_TICKERS.read_bytes())
        self.requests: list[Request] = []
        self.delay: dict[str, float] = defaultdict(float)
        self.renamed: dict[str, dict[str, str]] = {}
        self.valid_keys: dict[str, set[str]] = {}
        self._programs: dict[str, deque[Fault]] = {api: deque() for api in APIS}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.app = web.Application()
        self.app.router.add_get("/api/v3/coins/markets", self._markets)
        self.app.router.add_get("/api/v3/ping", self._ping)
        self.app.router.add_get("/v1/tickers", self._tickers)
        self.app.router.add_get("/api/v3/coins/{coin}/market_chart/range", self._market_chart)
        self.app.router.add_get("/v1/coins/{coin}/ohlcv/historical", self._ohlcv)
        # history endpoints (tests/support/upstream_history.py): how far back each "plan"
        # reaches (None: no limit)
        self.history_limit_days: dict[str, int | None] = {"coingecko": 365, "coinpaprika": None}
        self.candles = Candles()

    # -- what tests use ------------------------------------------------------------------
    @property
    def coingecko_url(self) -> str:
        return f"{self.base_url}/api/v3"

    @property
    def coinpaprika_url(self) -> str:
        return f"{self.base_url}/v1"

    def program(self, api: str, *faults: Fault) -> None:
        """Answer the next requests to `api` with `faults`, in order; then answer normally."""
        self._programs[api].extend(faults)

    def requests_to(self, api: str) -> list[Request]:
        return [request for request in self.requests if request.api == api]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Upstream:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0][1]  # the port, when 0 was asked for
        self.base_url = f"http://{host}:{bound}"
        return self

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- handlers ------------------------------------------------------------------------
    def _record(self, api: str, request: web.Request) -> Request:
        seen = Request(
            api=api,
            path=request.path,
            query=dict(request.query),
            headers={name.lower(): value for name, value in request.headers.items()},
            at=time.monotonic(),
            wall=time.time(),
        )
        self.requests.append(seen)
        return seen

    def _key_refused(self, api: str, request: web.Request) -> web.Response | None:
        valid = self.valid_keys.get(api)
        if valid is None:
            return None
        if api == "coingecko":
            given = request.headers.get("x-cg-demo-api-key") or request.headers.get(
                "x-cg-pro-api-key"
            )
            if given in valid:
                return None
            message = f"Invalid API key {given!r}: check your key in the developer dashboard"
            body = {"status": {"error_code": 10002, "error_message": message}}
            return web.json_response(body, status=401)
        given = request.headers.get("Authorization")
        if given in valid:
            return None
        return web.json_response({"error": f"invalid API key {given!r}"}, status=403)

    async def _answer(
        self, api: str, request: web.Request, good: Any, own: Fault | None = None
    ) -> web.StreamResponse:
        """A programmed fault first, else `own` (the handler's: a 404...), else `good`."""
        seen = self._record(api, request)
        if self.delay[api]:
            await asyncio.sleep(self.delay[api])
        refused = self._key_refused(api, request)
        if refused is not None:
            seen.status = refused.status
            return refused
        fault = self._programs[api].popleft() if self._programs[api] else (own or ok())
        response = await self._apply(fault, request, good)
        seen.status = response.status
        return response

    async def _apply(self, fault: Fault, request: web.Request, good: Any) -> web.StreamResponse:
        real = json.dumps(good, separators=(",", ":")).encode()
        if fault.kind == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), fault.seconds)
            return web.Response(status=504, text="hung")
        if fault.kind == "status":
            return web.Response(
                status=fault.status,
                body=fault.body,
                headers={"Content-Type": fault.content_type, **fault.headers},
            )
        if fault.kind == "truncated":
            return web.Response(body=real[: len(real) // 2], content_type="application/json")
        if fault.kind == "bom":
            return web.Response(body=b"\xef\xbb\xbf" + real, content_type="application/json")
        if fault.kind == "disconnect":
            stream = web.StreamResponse(headers={"Content-Type": JSON_TYPE})
            stream.content_length = len(real)
            await stream.prepare(request)
            await stream.write(real[: len(real) // 2])
            if request.transport is not None:
                request.transport.close()
            return stream
        return web.Response(
            body=real,
            headers={
                "Content-Type": JSON_TYPE,
                "Cache-Control": "max-age=30, public, must-revalidate, s-maxage=30",
                "Date": formatdate(usegmt=True),
            },
        )

    async def _markets(self, request: web.Request) -> web.StreamResponse:
        try:
            page = int(request.query.get("page", "1"))
            per_page = int(request.query.get("per_page", "100"))
        except ValueError:
            return web.json_response({"error": "invalid page or per_page"}, status=400)
        if page == 1:
            records = self.page_1
        elif 2 <= page <= self.coingecko_pages:
            records = synthetic_page(self.page_1, page)
        else:
            records = []
        records = records[:per_page]
        if "coingecko" in self.renamed:
            records = [rename(r, self.renamed["coingecko"]) for r in records]
        return await self._answer("coingecko", request, records)

    async def _ping(self, request: web.Request) -> web.StreamResponse:
        return await self._answer("coingecko", request, [{"gecko_says": "(V3) To the Moon!"}])

    async def _tickers(self, request: web.Request) -> web.StreamResponse:
        records = self.tickers
        if "coinpaprika" in self.renamed:
            records = [rename(r, self.renamed["coinpaprika"]) for r in records]
        return await self._answer("coinpaprika", request, records)

    async def _market_chart(self, request: web.Request) -> web.StreamResponse:
        coin = {record["id"]: record for record in self.page_1}.get(request.match_info["coin"])
        if coin is None:
            own = status(404, json.dumps({"error": "coin not found"}).encode())
            return await self._answer("coingecko", request, {}, own)
        try:
            start = float(request.query["from"])
            end = float(request.query["to"])
        except (KeyError, ValueError):
            own = status(400, json.dumps({"error": "from and to are required"}).encode())
            return await self._answer("coingecko", request, {}, own)
        try:
            series = coingecko_series(
                coin, start, end, time.time(), self.history_limit_days["coingecko"]
            )
        except HistoryError as exc:
            own = status(exc.status, json.dumps(exc.body).encode())
            return await self._answer("coingecko", request, {}, own)
        return await self._answer("coingecko", request, series)

    async def _ohlcv(self, request: web.Request) -> web.StreamResponse:
        ticker = {record["id"]: record for record in self.tickers}.get(request.match_info["coin"])
        if ticker is None:
            own = status(404, json.dumps({"error": "id not found"}).encode())
            return await self._answer("coinpaprika", request, [], own)
        try:
            candles = self.candles.history(
                ticker, dict(request.query), self.history_limit_days["coinpaprika"]
            )
        except HistoryError as exc:
            own = status(exc.status, json.dumps(exc.body).encode())
            return await self._answer("coinpaprika", request, [], own)
        return await self._answer("coinpaprika", request, candles)


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.support.upstream --port 9000`: serve both APIs until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument(
        "--coingecko-pages",
        type=int,
        default=1,
        help="pages of /coins/markets to serve (page 1 real, the rest synthetic); default 1",
    )
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds to wait before every answer"
    )
    args = parser.parse_args(argv)
    upstream = Upstream(coingecko_pages=args.coingecko_pages)
    for api in APIS:
        upstream.delay[api] = args.delay
    print(
        f"COINGECKO_BASE_URL=http://{args.host}:{args.port}/api/v3\n"
        f"COINPAPRIKA_BASE_URL=http://{args.host}:{args.port}/v1",
        flush=True,
    )
    web.run_app(upstream.app, host=args.host, port=args.port, access_log=None)


if __name__ == "__main__":
    main()
