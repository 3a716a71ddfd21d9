"""The exceptions cryptoetl raises, each carrying its context as attributes.

CryptoEtlError
├── ConfigError                    a bad setting; the message is one line naming it
├── DatabaseError
│   ├── DatabaseUnavailableError   cannot connect (host and port named, password masked)
│   ├── EmbeddedPostgresError      the embedded server could not be started or stopped
│   └── MigrationError             a migration file failed to apply
│       └── MigrationChecksumError an applied migration file was edited afterwards
├── SourceError                    fetching from a source failed (source, url)
│   ├── TransientSourceError       429, 5xx, timeout, connection error: worth a retry
│   ├── UpstreamRejectedError      any other 4xx: not retried, upstream's own message
│   ├── BadPayloadError            the body is not the JSON the source promises
│   ├── RetriesExhaustedError      still transient after MAX_RETRIES retries
│   └── CsvFileError               a CSV file that cannot be used as a whole (path, reason)
├── RunInProgressError             a run of these sources is already in progress
├── RunEndedError                  a run was ended elsewhere (reaped as dead) while it worked
├── NotLeaderError                 the scheduler lease is no longer ours: start no scheduled run
├── ServiceStoppingError           the service is shutting down: start no new run
└── AssetOverridesError            the asset overrides file is unreadable or inconsistent
"""

from __future__ import annotations

from collections.abc import Sequence


def describe(exc: BaseException) -> str:
    """A one-line description of an exception, with its type when the message is vague (our
    own source, CSV and run errors say everything in their message)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    if isinstance(exc, SourceError | RunEndedError):
        return text or name
    return f"{text} ({name})" if text else name


class CryptoEtlError(Exception):
    """Base of every error cryptoetl raises on purpose."""


class ConfigError(CryptoEtlError):
    """A setting is missing or invalid. The message names the variable."""


class DatabaseError(CryptoEtlError):
    """The database could not be used."""


class DatabaseUnavailableError(DatabaseError):
    """PostgreSQL cannot be reached. `target` is host:port (or socket dir), never a password."""

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"cannot connect to PostgreSQL at {target}: {reason}")


class EmbeddedPostgresError(DatabaseError):
    """The embedded PostgreSQL server failed to start or stop."""

    def __init__(self, data_dir: str, reason: str) -> None:
        self.data_dir = data_dir
        self.reason = reason
        super().__init__(f"embedded PostgreSQL in {data_dir}: {reason}")


class MigrationError(DatabaseError):
    """A migration file could not be applied; nothing of it was kept."""

    def __init__(self, filename: str, reason: str) -> None:
        self.filename = filename
        self.reason = reason
        super().__init__(f"migration {filename} failed: {reason}")


class MigrationChecksumError(MigrationError):
    """A migration that was applied has different content now."""

    def __init__(self, filename: str, applied: str, current: str) -> None:
        self.applied = applied
        self.current = current
        super().__init__(
            filename,
            f"the file changed after it was applied (applied checksum {applied[:12]}, "
            f"file now {current[:12]}); add a new migration instead of editing this one",
        )


class SourceError(CryptoEtlError):
    """Fetching from an upstream failed."""

    def __init__(self, source: str, message: str, *, url: str | None = None) -> None:
        self.source = source
        self.url = url
        self.message = message
        # The source is not in the text: whatever shows the error (a run's row, the status
        # page, a log line) names the source beside it. The URL without its query string.
        where = f" ({url.split('?', 1)[0]})" if url else ""
        super().__init__(f"{message}{where}")


class TransientSourceError(SourceError):
    """A failure worth retrying: 429, 5xx, a timeout or a connection error."""

    def __init__(
        self,
        source: str,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(source, message, url=url)


class UpstreamRejectedError(SourceError):
    """A 4xx other than 429: the request itself is wrong (a rejected key, a bad path)."""

    def __init__(self, source: str, message: str, *, url: str | None = None, status: int) -> None:
        self.status = status
        super().__init__(source, message, url=url)


class BadPayloadError(SourceError):
    """The upstream answered, but not with the JSON shape the source documents."""


class RetriesExhaustedError(SourceError):
    """Still failing after every retry; `last` is the final transient error."""

    def __init__(self, source: str, attempts: int, last: TransientSourceError) -> None:
        self.attempts = attempts
        self.last = last
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        super().__init__(source, f"gave up after {tries}: {last.message}", url=last.url)


class CsvFileError(SourceError):
    """A CSV file that cannot be loaded at all (unreadable, or a header with no coin or price)."""

    def __init__(self, path: str, reason: str, *, source: str = "csv") -> None:
        self.path = path
        self.reason = reason
        super().__init__(source, f"{path}: {reason}")


class RunInProgressError(CryptoEtlError):
    """Another run of the same sources is in progress; `run_ids` names the running runs."""

    def __init__(self, run_ids: Sequence[int], sources: Sequence[str]) -> None:
        self.run_ids = list(run_ids)
        self.sources = list(sources)
        super().__init__(
            f"a run is already in progress for {', '.join(sources)} (run ids "
            f"{', '.join(str(run_id) for run_id in run_ids)})"
        )


class RunEndedError(CryptoEtlError):
    """The run is no longer `running` (another process reaped it as dead): stop, commit nothing."""

    def __init__(self, run_id: int, source: str) -> None:
        self.run_id = run_id
        self.source = source
        super().__init__(
            f"{source}: run {run_id} was ended by another process (reaped as dead) while it "
            "was still loading; its last batch was rolled back"
        )


class NotLeaderError(CryptoEtlError):
    """The scheduler lease `name` is not held by `holder` with `fencing_token` any more (it
    expired, or another replica took it over): a scheduled run must not start."""

    def __init__(self, name: str, holder: str, fencing_token: int) -> None:
        self.name = name
        self.holder = holder
        self.fencing_token = fencing_token
        super().__init__(
            f"the scheduler lease {name!r} is no longer held by {holder} with fencing token "
            f"{fencing_token}; no scheduled run was started"
        )


class ServiceStoppingError(CryptoEtlError):
    """The service is shutting down and starts no new run."""

    def __init__(self) -> None:
        super().__init__("the service is stopping; no new run is started")


class AssetOverridesError(CryptoEtlError):
    """The asset overrides file cannot be used; `problem` says where in it and what."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"asset overrides {path}: {problem}")


class BackfillRequestError(CryptoEtlError):
    """A backfill request that cannot be run as asked (the message says what to change)."""
