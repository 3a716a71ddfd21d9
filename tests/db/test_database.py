"""Connecting: a clear one-line error for an unreachable server, with the password masked."""

from __future__ import annotations

import pytest

from cryptoetl.db.pool import describe_target
from cryptoetl.db.server import prepare_database
from cryptoetl.errors import DatabaseUnavailableError
from cryptoetl.log import SecretMasker
from cryptoetl.sources import load_settings
from tests.support.process import free_port


def test_describe_target_never_shows_the_password() -> None:
    """Messages name host, port and database, nothing else."""
    url = "postgresql://app:s3cret@db.example:6543/market"
    assert describe_target(url) == "db.example:6543/market"
    assert (
        describe_target("postgresql://postgres:@/postgres?host=/tmp/x") == "socket /tmp/x/postgres"
    )
    assert SecretMasker().mask_text(url) == "postgresql://app:***@db.example:6543/market"


async def test_unreachable_server_raises_a_clear_error() -> None:
    """Nothing listens on the port: the error names host and port, not the password."""
    port = free_port()
    settings = load_settings(
        env_file=None, database_url=f"postgresql://app:pw-secret-1@127.0.0.1:{port}/x"
    )
    with pytest.raises(DatabaseUnavailableError) as caught:
        async with prepare_database(settings):
            pass
    message = str(caught.value)
    assert f"127.0.0.1:{port}/x" in message
    assert "connection refused" in message
    assert "pw-secret-1" not in message


async def test_wrong_database_name_is_reported(pg_server_url: str) -> None:
    """A database that does not exist is named in the error."""
    url = pg_server_url.replace("/postgres?", "/no_such_db?")
    settings = load_settings(env_file=None, database_url=url)
    with pytest.raises(DatabaseUnavailableError, match='database "no_such_db" does not exist'):
        async with prepare_database(settings):
            pass
