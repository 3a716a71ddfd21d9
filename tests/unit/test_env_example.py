""".env.example: every setting of `Settings` and of every source's settings, explained, with
true defaults and no secret.

A setting added to `Settings` (or to a registered source's `SourceSettings`) without a line here
fails `test_every_setting_is_listed`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from cryptoetl.config import Settings
from cryptoetl.sources import REGISTRY, load_settings
from tests.support.deploy_files import ROOT, variables

EXAMPLE = ROOT / ".env.example"
# Read by compose for the postgres service, ignored by cryptoetl (extra="ignore").
COMPOSE_ONLY = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
# A `NAME=value` line, active or commented out as `# NAME=value`.
SETTING = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")
PLACEHOLDER_PASSWORDS = {"PASSWORD", "CHANGE-ME"}


def _entries() -> list[tuple[int, bool, str, str]]:
    """(line index, commented out?, name, value) for each setting line."""
    found = []
    for index, line in enumerate(EXAMPLE.read_text().splitlines()):
        match = SETTING.match(line)
        if match:
            found.append((index, match.group(1) is not None, match.group(2), match.group(3)))
    return found


def _models() -> list[type[BaseSettings]]:
    """The service's settings class and every registered source's."""
    return [Settings, *(m for m in REGISTRY.settings_classes().values() if m is not None)]


def _value(settings: Settings, model: type[BaseSettings], name: str) -> Any:
    part: BaseSettings = settings if model is Settings else settings.of(model)  # type: ignore[type-var]
    return getattr(part, name)


def _secret_names() -> set[str]:
    names = {
        name.upper()
        for model in _models()
        for name, field in model.model_fields.items()
        if SecretStr in getattr(field.annotation, "__args__", (field.annotation,))
    }
    return names | {"POSTGRES_PASSWORD"}


def test_every_setting_is_listed() -> None:
    """Each field of Settings has a line, once; nothing else but compose's POSTGRES_*."""
    names = [name for _, _, name, _ in _entries()]
    assert len(names) == len(set(names)), "a setting is listed twice"
    fields = {name.upper() for model in _models() for name in model.model_fields}
    assert fields - set(names) == set(), "settings missing from .env.example"
    assert set(names) - fields == COMPOSE_ONLY


def test_every_setting_is_explained() -> None:
    """The line above each setting is a comment that says something (not another setting)."""
    lines = EXAMPLE.read_text().splitlines()
    for index, _, name, _ in _entries():
        above = lines[index - 1]
        assert above.startswith("# "), f"{name} has no comment above it"
        assert not SETTING.match(above), f"{name} has no comment of its own"


def test_copying_the_example_changes_no_default() -> None:
    """`cp .env.example .env` loads, and every setting keeps its default until edited."""
    assert load_settings(env_file=EXAMPLE) == load_settings(env_file=None)


def test_the_shown_defaults_are_the_real_ones(tmp_path: Path) -> None:
    """Uncommenting every line gives valid settings, equal to the default wherever one is set."""
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{name}={value}\n" for _, _, name, value in _entries()))
    uncommented = load_settings(env_file=env_file)
    defaults = load_settings(env_file=None)
    for model in _models():
        for name in model.model_fields:
            default = _value(defaults, model, name)
            if default is not None:
                assert _value(uncommented, model, name) == default, name.upper()


def test_no_secret_is_filled_in() -> None:
    """Passwords, keys and tokens are empty; the example URL's password is a placeholder."""
    secrets = _secret_names()
    assert {"ADMIN_TOKEN", "COINPAPRIKA_API_KEY", "COINGECKO_API_KEY"} <= secrets
    for _, commented, name, value in _entries():
        if name in ("DATABASE_URL", "DATABASE_READ_URL"):
            assert commented
            password = urlsplit(value).password
            assert password is not None
            assert password.upper() in PLACEHOLDER_PASSWORDS
        elif name in secrets:
            assert value == "", f"{name} has a value in .env.example"


@pytest.mark.parametrize("name", ["ADMIN_TOKEN", "POSTGRES_PASSWORD"])
def test_what_an_operator_must_set_is_not_hidden(name: str) -> None:
    """The secrets an operator must set are active (uncommented) lines, ready to fill in."""
    assert [commented for _, commented, n, _ in _entries() if n == name] == [False]


def test_compose_reads_only_documented_variables() -> None:
    """Every ${VARIABLE} compose.yaml substitutes is listed in .env.example."""
    names = {name for _, _, name, _ in _entries()}
    assert variables((ROOT / "compose.yaml").read_text()) - names == set()
