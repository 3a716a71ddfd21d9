"""Who runs a run, and how another process tells that it died.

Every `running` row in `etl_runs` names its owner as `host:pid:token`. The token starts with
the owner process's start time, so a pid that was reused by an unrelated process later is not
mistaken for the owner. A run is dead when:

- its owner ran on this host and that process is gone (or the pid now belongs to a process that
  started later): detected at once;
- or its heartbeat is older than `stale_after` seconds (an owner on another host, or one that
  hangs): detected after a few missed heartbeats.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

import psutil

# How often a running pipeline touches `heartbeat_at`, and after how many missed beats another
# process may call the run dead.
HEARTBEAT_SECONDS = 10.0
MISSED_BEATS = 3


@dataclass(frozen=True, slots=True)
class Owner:
    """A process that runs ETL: its host, pid and a token unique to this process start."""

    host: str
    pid: int
    token: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"

    @property
    def started(self) -> int | None:
        """The owner process's start time (whole seconds since the epoch), from the token."""
        head = self.token.split("-", 1)[0]
        return int(head) if head.isdigit() else None

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        """The owner written by `str(owner)`; None for text in another shape."""
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])


def _process_start(pid: int) -> int | None:
    try:
        return int(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def this_process() -> Owner:
    """An owner identity for the current process (a new token on every call)."""
    pid = os.getpid()
    started = _process_start(pid) or 0
    return Owner(socket.gethostname(), pid, f"{started}-{secrets.token_hex(4)}")


def owner_gone(owner: Owner, host: str) -> bool:
    """True when `owner` ran on `host` (this host) and its process no longer exists."""
    if owner.host != host:
        return False
    if not psutil.pid_exists(owner.pid):
        return True
    started = _process_start(owner.pid)
    if started is None:
        return True
    # The pid exists, but a process that started at another time holds it now.
    return owner.started is not None and abs(started - owner.started) > 1


def death_reason(
    owner_text: str,
    heartbeat_at: datetime,
    now: datetime,
    *,
    stale_after: float = HEARTBEAT_SECONDS * MISSED_BEATS,
    host: str | None = None,
) -> str | None:
    """Why the run owned by `owner_text` is dead, or None while it may still be alive."""
    host = host or socket.gethostname()
    since = heartbeat_at.isoformat(timespec="seconds")
    owner = Owner.parse(owner_text)
    if owner is not None and owner_gone(owner, host):
        return f"owner process {owner_text} died; no heartbeat since {since}"
    if now - heartbeat_at > timedelta(seconds=stale_after):
        return (
            f"owner {owner_text} stopped sending heartbeats; no heartbeat since {since} "
            f"(more than {stale_after:.0f} s)"
        )
    return None
