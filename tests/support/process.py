"""Helpers shared by the tests: free ports, real `cryptoetl serve` and `etl run` subprocesses,
waiting."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from cryptoetl.cli.progress import SUMMARY_COLUMNS
from tests.support.upstream import Upstream

CRYPTOETL = str(Path(sys.executable).parent / "cryptoetl")


def dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def postmasters(data_dir: Path) -> list[psutil.Process]:
    """The postgres processes running on `data_dir` (a data directory or one that holds it)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and str(data_dir) in cmdline:
            found.append(proc)
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def loopback_env(db_url: str, upstream: Upstream, **extra: str) -> dict[str, str]:
    """A clean environment for a `cryptoetl` subprocess on `db_url` whose HTTP sources read
    the loopback `upstream`: no pacing, quick retries, coingecko and coinpaprika only."""
    values = {
        "DATABASE_URL": db_url,
        "COINGECKO_BASE_URL": upstream.coingecko_url,
        "COINPAPRIKA_BASE_URL": upstream.coinpaprika_url,
        "COINGECKO_REQUESTS_PER_MINUTE": "60000",
        "COINPAPRIKA_REQUESTS_PER_MINUTE": "60000",
        "RATE_LIMIT_DELAY": "0",
        "INITIAL_RETRY_DELAY": "0.05",
        "MAX_RETRY_DELAY": "0.2",
        "ENABLED_SOURCES": "coingecko,coinpaprika",
        "LOG_LEVEL": "WARNING",
    }
    return clean_env(**{**values, **extra})


def clean_env(**values: str) -> dict[str, str]:
    """The test process's environment without any cryptoetl setting, plus `values`."""
    from cryptoetl.config import Settings

    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update(values)
    return env


@dataclass
class Finished:
    """How a `cryptoetl etl run` subprocess ended."""

    code: int
    stdout: str
    stderr: str

    def summary(self) -> dict[str, list[str]]:
        """The summary table's rows by source (cells split on runs of spaces)."""
        lines = self.stdout.strip().splitlines()
        assert tuple(lines[0].split()) == SUMMARY_COLUMNS
        return {line.split()[0]: line.split(maxsplit=8) for line in lines[1:]}


async def start_etl(env: Mapping[str, str], *args: str) -> asyncio.subprocess.Process:
    """`cryptoetl etl run *args` with its output piped."""
    return await asyncio.create_subprocess_exec(
        CRYPTOETL,
        "etl",
        "run",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def etl(env: Mapping[str, str], *args: str) -> Finished:
    """Run `cryptoetl etl run *args` to its end (a loopback upstream keeps serving from this
    loop meanwhile)."""
    process = await start_etl(env, *args)
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Finished(process.returncode, out.decode(), err.decode())


async def sigkill_when(
    process: asyncio.subprocess.Process, reached: Callable[[], Awaitable[bool]], within: float
) -> None:
    """SIGKILL `process` once `reached()` is true (or `within` seconds passed) and reap it."""
    deadline = time.monotonic() + within
    while not await reached():
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    await process.wait()


@dataclass
class ServeProcess:
    """A running `cryptoetl serve`, its URL and its log file."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def start_serve(
    env: Mapping[str, str],
    log_path: Path,
    *,
    cwd: Path | None = None,
    wait: bool = True,
    timeout: float = 60,
    executable: str = CRYPTOETL,
) -> ServeProcess:
    """Start `cryptoetl serve` on a free port and (by default) wait until health answers 200.

    `executable` is the `cryptoetl` to run: this checkout's, or one installed elsewhere.
    """
    port = free_port()
    full_env = clean_env(API_HOST="127.0.0.1", API_PORT=str(port), LOG_FORMAT="json", **env)
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [executable, "serve"],
        env=full_env,
        cwd=cwd,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log_file.close()
    served = ServeProcess(process, f"http://127.0.0.1:{port}", log_path, full_env)
    if wait:
        wait_healthy(served, timeout=timeout)
    return served


def wait_healthy(served: ServeProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise AssertionError(
                f"cryptoetl serve exited with {served.process.returncode}:\n{served.log_text()}"
            )
        try:
            response = httpx.get(f"{served.base_url}/api/v1/health", timeout=2)
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    served.stop(signal.SIGKILL)
    raise AssertionError(f"cryptoetl serve not healthy after {timeout} s:\n{served.log_text()}")


def wait_until(predicate: object, timeout: float = 10, interval: float = 0.05) -> None:
    """Poll a zero-argument callable until it returns true."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
