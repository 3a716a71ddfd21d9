"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for page tests.

    async with launch_browser(tmp_path) as browser:
        page = await browser.new_page(width=1280, height=800)
        await page.goto(url)                     # waits for the load event
        await page.evaluate("document.title")    # a JSON value
        await page.screenshot(tmp_path / "x.png")
        page.problems                            # console errors, exceptions, error log entries
        page.requests                            # every URL the page asked for

Chromium is started by the test with the flags below and a throw-away profile, on a free
loopback port; the protocol is spoken over aiohttp's websocket client, so nothing else needs
installing. `CHROMIUM` absent: `chromium_missing()` says why the test must skip.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.process import free_port

CHROMIUM = Path("/usr/bin/chromium")
# The network unreachable but for loopback: every request goes to a proxy on a port nothing
# listens on (loopback bypasses a proxy), and no host name but the loopback ones resolves.
OFFLINE_FLAGS = (
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)
START_TIMEOUT = 30.0
CALL_TIMEOUT = 30.0


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium)"
    return None


class Protocol:
    """One DevTools websocket: numbered calls with their answers, and events per session."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.pages: dict[str, Page] = {}
        self._reader = asyncio.create_task(self._read())

    async def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        call_id = next(self._ids)
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        answer = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = answer
        await self.ws.send_json(message)
        async with asyncio.timeout(CALL_TIMEOUT):
            reply = await answer
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = message.json()
            if "id" in data:
                waiting = self._waiting.pop(data["id"], None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(data)
            elif data.get("sessionId") in self.pages:
                self.pages[data["sessionId"]].on_event(data["method"], data.get("params", {}))

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.ws.close()


class Page:
    """A tab: navigate, evaluate, screenshot; it records what went wrong and what it fetched."""

    def __init__(self, protocol: Protocol, session: str) -> None:
        self.protocol = protocol
        self.session = session
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.statuses: dict[str, int] = {}
        self._loaded = asyncio.Event()

    def on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Page.loadEventFired":
            self._loaded.set()
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            texts = [str(arg.get("value", arg.get("description", ""))) for arg in params["args"]]
            self.problems.append(f"console.{params['type']}: {' '.join(texts)}")
        elif method == "Runtime.exceptionThrown":
            self.problems.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            where = entry.get("url", "")
            self.problems.append(f"{entry.get('source')}: {entry.get('text')} {where}")
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Network.responseReceived":
            self.statuses[params["response"]["url"]] = params["response"]["status"]

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.protocol.call(method, params, self.session)

    async def goto(self, url: str) -> int:
        """Load `url` and wait for its load event; the document's HTTP status."""
        self._loaded.clear()
        result = await self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise RuntimeError(f"navigation to {url} failed: {result['errorText']}")
        async with asyncio.timeout(CALL_TIMEOUT):
            await self._loaded.wait()
        return self.statuses.get(url, 0)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    async def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """The whole page (or only what the viewport shows) as a PNG at `path`."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = (await self.call("Page.getLayoutMetrics"))["cssContentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            }
        shot = await self.call("Page.captureScreenshot", params)
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
        return path


class Browser:
    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol

    async def new_page(self, *, width: int, height: int, mobile: bool = False) -> Page:
        """A new tab with a `width` x `height` CSS-pixel viewport (a phone's when `mobile`)."""
        target = await self.protocol.call("Target.createTarget", {"url": "about:blank"})
        attached = await self.protocol.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self.protocol, attached["sessionId"])
        self.protocol.pages[page.session] = page
        for domain in ("Page", "Runtime", "Log", "Network"):
            await page.call(f"{domain}.enable")
        await page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )
        return page


async def _debugger_url(http: aiohttp.ClientSession, port: int, process: Any) -> str:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    while asyncio.get_running_loop().time() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(f"http://127.0.0.1:{port}/json/version") as response:
                url: str = (await response.json())["webSocketDebuggerUrl"]
                return url
        await asyncio.sleep(0.1)
    raise RuntimeError(f"chromium did not open its DevTools port within {START_TIMEOUT} s")


@asynccontextmanager
async def launch_browser(workdir: Path, *, offline: bool = False) -> AsyncIterator[Browser]:
    """Chromium with a fresh profile under `workdir` (its log in `workdir/chromium.log`);
    `offline`: nothing but loopback addresses can be reached (`OFFLINE_FLAGS`)."""
    profile = workdir / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (workdir / "chromium.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        str(CHROMIUM),
        *FLAGS,
        *(OFFLINE_FLAGS if offline else ()),
        f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1",
        f"--remote-debugging-port={port}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    log.close()
    try:
        async with aiohttp.ClientSession() as http:
            url = await _debugger_url(http, port, process)
            async with http.ws_connect(url, max_msg_size=0) as ws:
                protocol = Protocol(ws)
                try:
                    yield Browser(protocol)
                finally:
                    await protocol.close()
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        await asyncio.to_thread(shutil.rmtree, profile, True)
