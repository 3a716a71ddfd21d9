"""Settings: defaults from the design, parsing from the environment, one clear line when bad."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryptoetl.errors import ConfigError
from cryptoetl.sources import REGISTRY, load_settings
from cryptoetl.sources.coingecko import CoinGeckoSettings
from cryptoetl.sources.csv_source import CsvSettings


def test_defaults_follow_the_seed() -> None:
    """Unset variables take the seed's defaults."""
    settings = load_settings(env_file=None)
    assert settings.database_url is None
    assert settings.api_port == 8000
    assert settings.max_retries == 3
    assert settings.initial_retry_delay == 1.0
    assert settings.max_retry_delay == 60.0
    assert settings.rate_limit_delay == 0.5
    assert settings.of(CsvSettings).csv_file_path == "data/sample.csv"
    assert settings.log_level == "INFO"
    assert settings.cryptoetl_data_dir == Path(".cryptoetl")
    assert settings.enabled_sources == REGISTRY.names
    assert settings.database_read_url is None  # reads go to the primary
    assert settings.read_replica_max_lag_seconds == 30


def test_values_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Environment variables, unprefixed and case-insensitive in value where it makes sense."""
    monkeypatch.setenv("API_PORT", "9001")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("ENABLED_SOURCES", "coingecko, CSV")
    monkeypatch.setenv("COINGECKO_API_PLAN", "PRO")
    monkeypatch.setenv("ETL_RUN_ON_STARTUP", "false")
    settings = load_settings(env_file=None)
    assert settings.api_port == 9001
    assert settings.log_level == "DEBUG"
    assert settings.enabled_sources == ("coingecko", "csv")
    assert settings.of(CoinGeckoSettings).coingecko_api_plan == "pro"
    assert settings.etl_run_on_startup is False


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    """A `.env` file supplies settings; unknown keys in it (compose's) are ignored."""
    env_file = tmp_path / ".env"
    env_file.write_text("API_PORT=8123\nPOSTGRES_PASSWORD=x\nCOINGECKO_PAGES=2\n")
    settings = load_settings(env_file=env_file)
    assert settings.api_port == 8123
    assert settings.of(CoinGeckoSettings).coingecko_pages == 2


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("API_PORT", "abc", "API_PORT: Input should be a valid integer"),
        ("API_PORT", "70000", "API_PORT: Input should be less than or equal to 65535"),
        ("MAX_RETRIES", "-1", "MAX_RETRIES: Input should be greater than or equal to 0"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT: Input should be 'json' or 'console'"),
        ("ENABLED_SOURCES", "coingecko,binance", "ENABLED_SOURCES: unknown source(s) binance"),
        ("DATABASE_URL", "mysql://u:p@h/db", "DATABASE_URL: must be a postgresql:// URL"),
        ("COINGECKO_BASE_URL", "not a url", "COINGECKO_BASE_URL: Input should be a valid URL"),
        ("ETL_RUN_ON_STARTUP", "maybe", "ETL_RUN_ON_STARTUP: Input should be a valid boolean"),
        (
            "FULL_RESOLUTION_DAYS",
            "-1",
            "FULL_RESOLUTION_DAYS: Input should be greater than or equal to 0",
        ),
        ("FULL_RESOLUTION_DAYS", "a month", "FULL_RESOLUTION_DAYS: Input should be a valid int"),
        (
            "DATABASE_READ_URL",
            "http://standby/db",
            "DATABASE_READ_URL: must be a postgresql:// URL",
        ),
        ("DATABASE_READ_URL", "postgresql://h:99999/db", "DATABASE_READ_URL: has an invalid port"),
        (
            "READ_REPLICA_MAX_LAG_SECONDS",
            "0",
            "READ_REPLICA_MAX_LAG_SECONDS: Input should be greater than 0",
        ),
        (
            "READ_REPLICA_MAX_LAG_SECONDS",
            "soon",
            "READ_REPLICA_MAX_LAG_SECONDS: Input should be a valid number",
        ),
    ],
)
def test_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    """A bad value raises ConfigError with one line that starts with the variable's name."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    message = str(caught.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_secret_values_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rejected DATABASE_URL does not print the password it contains."""
    monkeypatch.setenv("DATABASE_URL", "mysql://user:hunter2secret@db/x")
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    assert "hunter2secret" not in str(caught.value)


def test_retry_delays_must_be_ordered(monkeypatch: pytest.MonkeyPatch) -> None:
    """INITIAL_RETRY_DELAY above MAX_RETRY_DELAY is refused with both names."""
    monkeypatch.setenv("INITIAL_RETRY_DELAY", "10")
    monkeypatch.setenv("MAX_RETRY_DELAY", "5")
    with pytest.raises(ConfigError, match="INITIAL_RETRY_DELAY must not exceed MAX_RETRY_DELAY"):
        load_settings(env_file=None)


def test_request_budget_defaults_follow_the_plan() -> None:
    """Without a budget set, CoinGecko's follows the key and plan."""
    assert load_settings(env_file=None).of(CoinGeckoSettings).budget() == 10
    assert load_settings(env_file=None, coingecko_api_key="k").of(CoinGeckoSettings).budget() == 30
    pro = load_settings(env_file=None, coingecko_api_key="k", coingecko_api_plan="pro")
    assert pro.of(CoinGeckoSettings).budget() == 250
    assert (
        load_settings(env_file=None, coingecko_requests_per_minute=7).of(CoinGeckoSettings).budget()
        == 7
    )


def test_secrets_lists_keys_and_the_database_password() -> None:
    """Everything the log pipeline must mask."""
    settings = load_settings(
        env_file=None,
        database_url="postgresql://app:dbpass123@db:5432/x",
        coingecko_api_key="cg-key-1",
        admin_token="tok-123456",
    )
    assert set(settings.secrets()) == {"dbpass123", "cg-key-1", "tok-123456"}


def test_the_read_replica_url_is_read_and_its_password_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_READ_URL", "postgresql://app:standbypass@standby:5432/x")
    monkeypatch.setenv("READ_REPLICA_MAX_LAG_SECONDS", "2.5")
    monkeypatch.setenv("DATABASE_URL", " ")  # blank is unset, as for every URL
    settings = load_settings(env_file=None)
    assert settings.database_read_url is not None
    assert settings.database_read_url.get_secret_value().endswith("@standby:5432/x")
    assert settings.read_replica_max_lag_seconds == 2.5
    assert settings.database_url is None
    assert settings.secrets() == ["standbypass"]
