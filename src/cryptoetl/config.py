"""Settings, read once from the environment and `.env`, validated, then passed down.

Nothing here runs at import time: `load_settings()` is called by the CLI and by tests, and the
resulting `Settings` object is handed to `create_app`, the pipeline and the scheduler.
A bad value raises `ConfigError` whose message is one line naming the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cryptoetl.errors import ConfigError

KNOWN_SOURCES: tuple[str, ...] = ("coinpaprika", "coingecko", "csv")

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

# Request budgets (requests per minute) when the operator sets none, from the providers' docs.
# CoinGecko: keyless calls are limited per IP (5-15/min in its older docs, shared with everyone
# behind that IP); the demo plan has been documented at 30/min (newer pages say 100: 30 stays
# safe under both); a pro key can be any paid plan, the smallest of which (Basic) allows 250/min,
# so a bigger plan sets COINGECKO_REQUESTS_PER_MINUTE. CoinPaprika's plans are monthly quotas
# (free: 20,000 calls a month) with no per-minute figure; one call per run is what matters
# there, and the budget only spaces retries.
DEFAULT_COINGECKO_BUDGET: dict[str, int] = {"keyless": 10, "demo": 30, "pro": 250}
DEFAULT_COINPAPRIKA_BUDGET: dict[str, int] = {"free": 60, "pro": 600}


class Settings(BaseSettings):
    """Every setting of the service. Field names are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL; unset starts an embedded PostgreSQL in CRYPTOETL_DATA_DIR.",
    )
    cryptoetl_data_dir: Path = Field(
        default=Path(".cryptoetl"),
        description="Where the embedded PostgreSQL keeps its data (when DATABASE_URL is unset).",
    )
    api_host: str = Field(default="0.0.0.0", min_length=1)  # noqa: S104 - the seed's default
    api_port: int = Field(default=8000, ge=1, le=65535)
    log_level: LogLevel = "INFO"
    log_format: Literal["json", "console"] | None = Field(
        default=None, description="Unset: console on a terminal, JSON lines otherwise."
    )

    coinpaprika_api_key: SecretStr | None = None
    coinpaprika_base_url: AnyHttpUrl | None = None
    coinpaprika_requests_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    coingecko_api_key: SecretStr | None = None
    coingecko_api_plan: Literal["demo", "pro"] = "demo"
    coingecko_base_url: AnyHttpUrl | None = None
    coingecko_pages: int = Field(default=4, ge=1, le=100)
    coingecko_requests_per_minute: int | None = Field(default=None, ge=1, le=100_000)

    csv_file_path: str = Field(default="data/sample.csv", min_length=1)
    enabled_sources: Annotated[tuple[str, ...], NoDecode] = KNOWN_SOURCES

    max_retries: int = Field(default=3, ge=0, le=20)
    initial_retry_delay: float = Field(default=1.0, gt=0, le=3600)
    max_retry_delay: float = Field(default=60.0, gt=0, le=3600)
    rate_limit_delay: float = Field(default=0.5, ge=0, le=3600)
    http_connect_timeout: float = Field(default=10.0, gt=0, le=600)
    http_read_timeout: float = Field(default=30.0, gt=0, le=600)

    etl_interval_seconds: int = Field(default=300, ge=1, le=7 * 24 * 3600)
    etl_run_on_startup: bool = True
    scheduler_lease_seconds: int = Field(default=30, ge=3, le=3600)
    admin_token: SecretStr | None = None
    api_cache_mb: int = Field(
        default=32,
        ge=0,
        le=4096,
        description="Memory for /data responses cached per data version; 0 disables the cache.",
    )

    @field_validator("enabled_sources", mode="before")
    @classmethod
    def _split_sources(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip().lower() for part in value.split(",") if part.strip())
        return value

    @field_validator("enabled_sources")
    @classmethod
    def _known_sources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in KNOWN_SOURCES]
        if unknown:
            raise ValueError(
                f"unknown source(s) {', '.join(unknown)}; known: {', '.join(KNOWN_SOURCES)}"
            )
        return tuple(dict.fromkeys(value))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", "coingecko_api_plan", mode="before")
    @classmethod
    def _lower_choice(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return value or None
        return value

    @field_validator(
        "database_url",
        "coinpaprika_api_key",
        "coingecko_api_key",
        "admin_token",
        "coinpaprika_base_url",
        "coingecko_base_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError("must be a postgresql:// URL")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError("has an invalid port") from exc
        return value

    @model_validator(mode="after")
    def _delays_ordered(self) -> Settings:
        if self.initial_retry_delay > self.max_retry_delay:
            raise ValueError(
                "INITIAL_RETRY_DELAY must not exceed MAX_RETRY_DELAY "
                f"({self.initial_retry_delay} > {self.max_retry_delay})"
            )
        return self

    def coingecko_budget(self) -> int:
        """Requests per minute for CoinGecko: the setting, else the plan's documented rate."""
        if self.coingecko_requests_per_minute is not None:
            return self.coingecko_requests_per_minute
        if self.coingecko_api_key is None:
            return DEFAULT_COINGECKO_BUDGET["keyless"]
        return DEFAULT_COINGECKO_BUDGET[self.coingecko_api_plan]

    def coinpaprika_budget(self) -> int:
        """Requests per minute for CoinPaprika: the setting, else the plan's default."""
        if self.coinpaprika_requests_per_minute is not None:
            return self.coinpaprika_requests_per_minute
        plan = "free" if self.coinpaprika_api_key is None else "pro"
        return DEFAULT_COINPAPRIKA_BUDGET[plan]

    def secrets(self) -> list[str]:
        """Every secret value set, so the log pipeline can mask it wherever it appears."""
        values: list[str] = []
        for secret in (
            self.coinpaprika_api_key,
            self.coingecko_api_key,
            self.admin_token,
        ):
            if secret is not None and secret.get_secret_value():
                values.append(secret.get_secret_value())
        if self.database_url is not None:
            password = urlsplit(self.database_url.get_secret_value()).password
            if password:
                values.append(password)
        return values


def _describe(error: Any) -> str:
    loc = error.get("loc") or ()
    name = str(loc[0]).upper() if loc else "configuration"
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    value = error.get("input")
    secret_names = {"DATABASE_URL", "COINPAPRIKA_API_KEY", "COINGECKO_API_KEY", "ADMIN_TOKEN"}
    if loc and isinstance(value, str | int | float) and name not in secret_names:
        return f"{name}: {message} (got {value!r})"
    return f"{name}: {message}"


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read the settings; raise `ConfigError` with one line naming each bad variable."""
    try:
        return Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors()]
        raise ConfigError("; ".join(lines)) from None
