"""The Makefile as a user runs it: `make health` (and stats, data) fail when nothing answers
and follow API_PORT from .env; closing the terminal of `make run` (SIGHUP to its process
group) stops the embedded PostgreSQL."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.support.process import CRYPTOETL, clean_env, free_port, postmasters, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("make") is None or shutil.which("curl") is None, reason=""),
]

REPO = Path(__file__).resolve().parents[2]


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("API_PORT", "API_URL")}
    return subprocess.run(
        ["make", "-s", "-C", str(REPO), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status":"healthy","path":"' + self.path.encode() + b'"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def listening() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("target", ["health", "stats", "data"])
def test_a_target_fails_when_nothing_listens(tmp_path: Path, target: str) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"API_PORT={free_port()}\n")
    done = make(target, f"ENV_FILE={env_file}")
    assert done.returncode != 0
    assert "Failed to connect" in done.stderr


def test_targets_follow_api_port_from_the_env_file(tmp_path: Path, listening: int) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f'POSTGRES_PASSWORD=x\nexport API_PORT = "{listening}"\n')
    done = make("health", f"ENV_FILE={env_file}")
    assert done.returncode == 0, done.stderr
    assert '"path":"/api/v1/health"' in done.stdout
    data = make("data", f"ENV_FILE={env_file}")
    assert '"path":"/api/v1/data?page=1&page_size=10"' in data.stdout
    # the environment wins over the file, as it does for the service
    moved = make("health", f"ENV_FILE={env_file}", env={"API_PORT": str(free_port())})
    assert moved.returncode != 0


def test_sighup_to_make_runs_group_stops_the_embedded_database(tmp_path: Path) -> None:
    """`make run` in its own process group, as a terminal runs it; the terminal closes."""
    data_dir = (tmp_path / "state").resolve()
    port = free_port()
    stamp = tmp_path / "installed"
    stamp.touch()  # newer than pyproject.toml: `make run` installs nothing
    env = clean_env(
        CRYPTOETL_DATA_DIR=str(data_dir),
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        ETL_RUN_ON_STARTUP="false",
        LOG_FORMAT="json",
    )
    log = (tmp_path / "make-run.log").open("wb")
    venv = str(Path(sys.executable).parent.parent)
    process = subprocess.Popen(
        ["make", "-s", "-C", str(REPO), "run", f"VENV={venv}", f"RUN_STAMP={stamp}"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=90, interval=0.2)
        assert postmasters(data_dir)
        os.killpg(process.pid, signal.SIGHUP)
        wait_until(lambda: postmasters(data_dir) == [], timeout=30, interval=0.2)
        process.wait(30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        for leftover in postmasters(data_dir):
            leftover.kill()
    text = (tmp_path / "make-run.log").read_text()
    assert "embedded_postgres_stopped" in text


def test_a_busy_port_is_one_line_and_exit_status_3(tmp_path: Path) -> None:
    """The port is bound before anything starts: no database is started, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [CRYPTOETL, "serve"],
            env=clean_env(
                CRYPTOETL_DATA_DIR=str(tmp_path / "state"),
                API_HOST="127.0.0.1",
                API_PORT=str(port),
                LOG_FORMAT="json",
            ),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        f"cryptoetl: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(another server there? set API_PORT or pass --port)"
    ]
    assert not (tmp_path / "state" / "pgdata").exists()
