"""Settings, read once from the environment and `.env`, validated, then passed down.

`Settings` holds the service's own settings; each source declares its own in a
`SourceSettings` subclass (its API key, its base URL...), which the same read fills from the
same environment. `read_settings(env_file, sources)` reads them all at once;
`cryptoetl.sources.load_settings()` calls it with every registered source, and is what the CLI
and the tests use. The resulting `Settings` object is handed to `create_app`, the pipeline and
the scheduler; a source finds its own part with `settings.of(CoinGeckoSettings)`.

Nothing here runs at import time. A bad value raises `ConfigError` whose message is one line
naming the variable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cryptoetl.errors import ConfigError

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
_CONFIG = SettingsConfigDict(
    env_file=".env",
    env_file_encoding="utf-8",
    case_sensitive=False,
    extra="ignore",
    frozen=True,
)


class SourceSettings(BaseSettings):
    """The settings one source declares: subclass it in the source's module, one field per
    environment variable (named like the variable), and name the class in the source's
    `SourceInfo`. Read together with `Settings` (`read_settings`)."""

    model_config = _CONFIG


class Settings(BaseSettings):
    """Every setting of the service. Field names are the environment variable names."""

    model_config = _CONFIG

    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL; unset starts an embedded PostgreSQL in CRYPTOETL_DATA_DIR.",
    )
    database_read_url: SecretStr | None = Field(
        default=None,
        description=(
            "A hot standby of the primary: every read of the API and the dashboard goes there, "
            "every write to the primary. Unset: reads go to the primary too."
        ),
    )
    read_replica_max_lag_seconds: float = Field(
        default=30.0,
        gt=0,
        le=86400,
        description="Past this lag behind the primary, reads fall back to the primary.",
    )
    cryptoetl_data_dir: Path = Field(
        default=Path(".cryptoetl"),
        description="Where the embedded PostgreSQL keeps its data (when DATABASE_URL is unset).",
    )
    embedded_shared_buffers_mb: int = Field(
        default=512,
        ge=16,
        le=1_048_576,
        description="The embedded PostgreSQL's shared_buffers in MiB (DATABASE_URL unset).",
    )
    api_host: str = Field(default="0.0.0.0", min_length=1)  # noqa: S104 - the seed's default
    api_port: int = Field(default=8000, ge=1, le=65535)
    log_level: LogLevel = "INFO"
    log_format: Literal["json", "console"] | None = Field(
        default=None, description="Unset: console on a terminal, JSON lines otherwise."
    )

    enabled_sources: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Unset: every registered source."
    )
    # each source's own settings, by source name (filled by `read_settings`)
    _sources: dict[str, SourceSettings] = PrivateAttr(default_factory=dict)

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
    api_max_body_kb: int = Field(
        default=1024,
        ge=1,
        le=1024 * 1024,
        description="The largest request body accepted, in KiB; a larger one answers 413.",
    )
    raw_retention_days: int = Field(
        default=30,
        ge=0,
        le=36500,
        description="Raw records older than this are dropped by whole partitions by "
        "`cryptoetl maintain`; 0 keeps them forever.",
    )
    maintenance_interval_seconds: int = Field(
        default=24 * 3600,
        ge=0,
        le=30 * 24 * 3600,
        description="How often the scheduler's leader runs maintenance (first run one interval "
        "after start); 0 leaves it to `cryptoetl maintain`.",
    )
    full_resolution_days: int = Field(
        default=30,
        ge=0,
        le=36_500,
        description=(
            "Observations older than this many days are thinned by `cryptoetl maintain` to the "
            "last of each (source, coin, UTC hour), after their hour was rolled up; 0 keeps "
            "every observation."
        ),
    )

    @field_validator("enabled_sources", mode="before")
    @classmethod
    def _split_sources(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip().lower() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return tuple(dict.fromkeys(value))
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_choice(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return value or None
        return value

    @field_validator("database_url", "database_read_url", "admin_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return empty_is_unset(value)

    @field_validator("database_url", "database_read_url")
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

    def of(self, kind: type[S]) -> S:
        """The settings of one source (`kind`, its `SourceSettings` class), as read with these."""
        for part in self._sources.values():
            if isinstance(part, kind):
                return part
        raise LookupError(f"{kind.__name__} was not read with these settings (see read_settings)")

    def sources_read(self) -> Mapping[str, SourceSettings]:
        """Every source's settings that were read, by source name."""
        return dict(self._sources)

    def secrets(self) -> list[str]:
        """Every secret value set, so the log pipeline can mask it wherever it appears."""
        # a database URL's secret is its password, not the whole URL
        urls = [u.get_secret_value() for u in (self.database_url, self.database_read_url) if u]
        values = [value for value in secret_values(self) if value not in urls]
        values += [value for part in self._sources.values() for value in secret_values(part)]
        for url in urls:
            password = urlsplit(url).password
            if password:
                values.append(password)
        return values


S = TypeVar("S", bound=SourceSettings)


def empty_is_unset(value: Any) -> Any:
    """An empty or blank environment value means the setting is not set (a `before` validator)."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


def secret_values(settings: BaseSettings) -> list[str]:
    """The values of every `SecretStr` field that is set."""
    values = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and value.get_secret_value():
            values.append(value.get_secret_value())
    return values


def _secret_names(models: Iterable[type[BaseSettings]]) -> set[str]:
    names = set()
    for model in models:
        for name, field in model.model_fields.items():
            if "SecretStr" in str(field.annotation):
                names.add(name.upper())
    return names


def _describe(error: Any, secret_names: set[str]) -> str:
    loc = error.get("loc") or ()
    name = str(loc[0]).upper() if loc else "configuration"
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    value = error.get("input")
    if loc and isinstance(value, str | int | float) and name not in secret_names:
        return f"{name}: {message} (got {value!r})"
    return f"{name}: {message}"


def read_settings(
    env_file: str | Path | None = ".env",
    *,
    sources: Mapping[str, type[SourceSettings] | None],
    **overrides: Any,
) -> Settings:
    """Read the service's settings and each source's (`sources`: name -> its settings class,
    None for a source that has none).

    `overrides` set fields by name (whichever class declares them). ENABLED_SOURCES unset
    enables every source in `sources`; set, it may only name them. Raises `ConfigError` with
    one line naming each bad variable.
    """
    parts_of = {name: model for name, model in sources.items() if model is not None}
    models: list[type[BaseSettings]] = [Settings, *parts_of.values()]
    known = {name for model in models for name in model.model_fields}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"no such setting: {', '.join(unknown)}")
    secret_names = _secret_names(models)
    lines: list[str] = []
    parts: dict[str, SourceSettings] = {}
    settings: Settings | None = None
    readers: list[tuple[str, type[BaseSettings]]] = [("", Settings), *parts_of.items()]
    for name, model in readers:
        given = {key: value for key, value in overrides.items() if key in model.model_fields}
        try:
            read = model(_env_file=env_file, **given)
        except ValidationError as exc:
            lines.extend(_describe(error, secret_names) for error in exc.errors())
            continue
        if isinstance(read, Settings):
            settings = read
        elif isinstance(read, SourceSettings):
            parts[name] = read
    if settings is not None:
        unknown = [name for name in settings.enabled_sources if name not in sources]
        if unknown:
            lines.append(
                f"ENABLED_SOURCES: unknown source(s) {', '.join(unknown)}; "
                f"known: {', '.join(sources)}"
            )
    if lines or settings is None:
        raise ConfigError("; ".join(lines))
    if "enabled_sources" not in settings.model_fields_set:
        settings = settings.model_copy(update={"enabled_sources": tuple(sources)})
    settings._sources = parts
    return settings
