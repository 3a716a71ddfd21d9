"""Apply `migrations/NNNN_name.sql` in order, each once, each in its own transaction.

Every applied file is recorded in `schema_migrations` with a SHA-256 of its content; a file
whose content changed after it was applied stops the runner. The whole run holds a
transaction-independent advisory lock on its own connection, so two processes starting
together apply each file exactly once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg
import structlog

from cryptoetl.errors import MigrationChecksumError, MigrationError

log = structlog.get_logger(__name__)

# pg_advisory_lock key: the first 8 bytes of sha256("cryptoetl.migrate") as a signed bigint.
MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"cryptoetl.migrate").digest()[:8], "big", signed=True
)
FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    filename: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def default_directory() -> Path:
    """The migrations shipped inside the package (`migrations/` in the repository)."""
    return Path(str(resources.files("cryptoetl") / "migrations"))


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Every migration file, sorted by version; a misnamed or duplicated one is an error."""
    directory = directory or default_directory()
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = FILENAME.match(path.name)
        if match is None:
            raise MigrationError(path.name, "file name must look like 0001_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                path.name, f"version {version} is used by {found[version].filename}"
            )
        found[version] = Migration(version, match.group(2), path.name, path.read_text("utf-8"))
    return [found[version] for version in sorted(found)]


async def migrate(
    conn: asyncpg.Connection[asyncpg.Record], directory: Path | None = None
) -> list[str]:
    """Apply pending migrations on `conn`; return the file names applied."""
    migrations = load_migrations(directory)
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer     PRIMARY KEY,
                name       text        NOT NULL,
                checksum   text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {row["version"]: row for row in rows}
        known = {migration.version for migration in migrations}
        for version in sorted(set(applied) - known):
            log.warning(
                "migration_unknown_to_this_version",
                version=version,
                name=applied[version]["name"],
            )
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationChecksumError(
                        migration.filename, row["checksum"], migration.checksum
                    )
                continue
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(migration.filename, str(exc)) from None
            applied_now.append(migration.filename)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now
