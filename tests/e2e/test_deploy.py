"""The container deployment, checked without a Docker engine: compose.yaml against the compose
spec and the issue's requirements, the Dockerfile with Docker's parser and hadolint, what the
build context holds, and that the image's health check fails on anything but a 2xx.

What needs an engine (building the image, `docker compose up`) is not run here; the wheel the
builder stage installs is built and run for real in tests/e2e/test_deploy_wheel.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from aiohttp import web

from tests.support.deploy_files import (
    ROOT,
    Instruction,
    build_context,
    dockerfile_stages,
    healthcheck_argv,
    interpolate,
    run_health_check,
    tracked_files,
)
from tests.support.process import free_port

BIN = Path(sys.executable).parent
ENV = {"POSTGRES_PASSWORD": "pw-from-dotenv"}


@pytest.fixture(scope="module")
def compose_text() -> str:
    return (ROOT / "compose.yaml").read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    """compose.yaml, with variables substituted as compose would from a .env."""
    document: dict[str, Any] = yaml.safe_load(interpolate(compose_text, ENV))
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return dict(compose["services"])


@pytest.fixture(scope="module")
def final_stage() -> list[Instruction]:
    return list(dockerfile_stages().values())[-1]


def test_compose_file_is_valid_compose_spec() -> None:
    """compose.yaml validates against the Compose Specification's JSON schema."""
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", "compose.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_refuses_to_start_without_a_postgres_password(compose_text: str) -> None:
    """No default password is baked in: an unset or empty POSTGRES_PASSWORD stops compose."""
    for env in ({}, {"POSTGRES_PASSWORD": ""}):
        with pytest.raises(KeyError, match=r"set POSTGRES_PASSWORD in \.env"):
            interpolate(compose_text, env)
    required = "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env (see .env.example)}"
    uses = re.findall(r"\$\{POSTGRES_PASSWORD[^}]*\}", compose_text)
    assert uses == [required, required]


def test_postgres_service_is_healthchecked_and_keeps_its_data(compose: dict[str, Any]) -> None:
    """Official image, pg_isready every 10 s, data in a named volume, not published."""
    postgres = compose["services"]["postgres"]
    image, _, tag = postgres["image"].partition(":")
    assert image == "postgres"
    assert int(tag.split("-")[0].split(".")[0]) >= 18
    # 18+ images keep PGDATA in /var/lib/postgresql/18/docker and refuse a .../data mount
    (volume,) = postgres["volumes"]
    name, target = volume.split(":")[:2]
    assert target == "/var/lib/postgresql"
    assert name in compose["volumes"]
    check = postgres["healthcheck"]
    assert check["test"][0] == "CMD-SHELL"
    assert "pg_isready" in check["test"][1]
    assert check["interval"] == "10s"
    assert "ports" not in postgres
    assert postgres["restart"] == "unless-stopped"


def test_api_service_waits_for_postgres_and_reports_health(services: dict[str, Any]) -> None:
    """Built here, starts once postgres is healthy, HTTP check every 30 s after 40 s, restarts."""
    api = services["api"]
    assert api["build"] == "."
    assert api["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    check = api["healthcheck"]
    assert check["test"] == ["CMD", *healthcheck_argv()]
    assert (check["interval"], check["start_period"]) == ("30s", "40s")
    assert api["restart"] == "unless-stopped"
    assert api["ports"] == ["8000:8000"]
    assert api["environment"]["API_PORT"] == "8000"
    assert api["env_file"] == ".env"
    assert "command" not in api  # the image's `cryptoetl serve`
    assert "entrypoint" not in api


def test_api_database_url_points_at_the_postgres_service(services: dict[str, Any]) -> None:
    """DATABASE_URL names the postgres service with the user, password and db it creates."""
    url = urlsplit(services["api"]["environment"]["DATABASE_URL"])
    postgres_env = services["postgres"]["environment"]
    assert url.scheme == "postgresql"
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert url.username == postgres_env["POSTGRES_USER"] == "cryptoetl"
    assert url.password == postgres_env["POSTGRES_PASSWORD"] == ENV["POSTGRES_PASSWORD"]
    assert url.path == "/" + postgres_env["POSTGRES_DB"]


def test_dockerfile_passes_hadolint() -> None:
    """hadolint, the Dockerfile linter, finds nothing to report."""
    result = subprocess.run(
        [BIN / "hadolint", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_built_in_a_builder_stage_and_run_from_a_slim_one() -> None:
    """The builder makes the wheel and its environment; the runtime copies only that."""
    stages = dockerfile_stages()
    assert list(stages) == ["builder", "runtime"]
    builder_run = " ".join(" ".join(i.value) for i in stages["builder"] if i.cmd == "RUN")
    assert "pip wheel --no-deps" in builder_run
    assert "venv --without-pip /opt/cryptoetl" in builder_run
    assert "--python /opt/cryptoetl/bin/python install /wheels/cryptoetl-" in builder_run
    runtime = stages["runtime"]
    assert runtime[0].value[0] == stages["builder"][0].value[0]  # same Python for the venv
    copies = [i for i in runtime if i.cmd in ("COPY", "ADD")]
    assert [(i.flag("from"), i.value) for i in copies] == [
        ("builder", ("/opt/cryptoetl", "/opt/cryptoetl"))
    ]
    runtime_run = " ".join(" ".join(i.value) for i in runtime if i.cmd == "RUN")
    for tool in ("apt-get", "gcc", "build-essential", "pip "):
        assert tool not in runtime_run


def test_runtime_runs_as_a_non_root_user_that_owns_nothing(final_stage: list[Instruction]) -> None:
    """The last USER is the dedicated unprivileged user; nothing is chowned to it."""
    users = [i.value[0] for i in final_stage if i.cmd == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid not in ("root", "0")
    assert gid not in ("root", "0")
    created = " ".join(" ".join(i.value) for i in final_stage if i.cmd == "RUN")
    assert f"useradd --system --uid {uid} " in created
    assert f"--gid {gid} " in created
    assert "chown" not in created
    assert all(i.flag("chown") is None for i in final_stage if i.cmd in ("COPY", "ADD"))


def test_runtime_serves_and_checks_its_health(final_stage: list[Instruction]) -> None:
    """`cryptoetl serve` in exec form (signals reach it), port 8000, a timed HEALTHCHECK."""
    by_cmd = {i.cmd: i for i in final_stage}
    command = [*by_cmd["ENTRYPOINT"].value, *by_cmd["CMD"].value]
    assert command == ["cryptoetl", "serve"]
    assert by_cmd["ENTRYPOINT"].exec_form
    assert by_cmd["CMD"].exec_form
    assert by_cmd["EXPOSE"].value == ("8000",)
    check = by_cmd["HEALTHCHECK"]
    assert (check.flag("interval"), check.flag("start-period")) == ("30s", "40s")
    assert healthcheck_argv()[0] == "python"


def test_no_secret_is_baked_into_the_image() -> None:
    """No ENV or ARG in any stage carries a password, token, key or database URL."""
    secret = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|DATABASE_URL", re.IGNORECASE)
    for stage in dockerfile_stages().values():
        for instruction in stage:
            if instruction.cmd == "ENV":
                names = instruction.value[0::2]
            elif instruction.cmd == "ARG":
                names = tuple(v.partition("=")[0] for v in instruction.value)
            else:
                continue
            assert not [name for name in names if secret.search(name)], instruction


def test_build_context_holds_only_what_the_wheel_is_built_from() -> None:
    """.dockerignore lets in pyproject.toml, README.md and the tracked sources, nothing else."""
    tracked = tracked_files()
    junk = [
        ".git/HEAD",
        ".venv/bin/python",
        ".cryptoetl/pgdata/PG_VERSION",
        ".env",
        "tests/fixtures/csv/prices.csv",
        "data/sample.csv",
        "bench/.work/result.json",
        "src/cryptoetl/__pycache__/cli.cpython-311.pyc",
        "src/cryptoetl.egg-info/PKG-INFO",
        "build/lib/cryptoetl/cli.py",
        "dist/cryptoetl-0.1.0-py3-none-any.whl",
    ]
    context = build_context(tracked + junk)
    expected = {"pyproject.toml", "README.md"} | {n for n in tracked if n.startswith("src/")}
    assert context == expected
    assert any(n.startswith("src/cryptoetl/migrations/") and n.endswith(".sql") for n in context)
    for stage in dockerfile_stages().values():
        for copy in (i for i in stage if i.cmd == "COPY" and i.flag("from") is None):
            for source in copy.value[:-1]:
                prefix = source.rstrip("/")
                assert any(n == prefix or n.startswith(prefix + "/") for n in context), source


@pytest.fixture
async def health_server() -> AsyncIterator[tuple[int, list[int]]]:
    """A loopback /api/v1/health answering with the status at the head of a list."""
    statuses: list[int] = []

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "test"}, status=statuses[0])

    app = web.Application()
    app.router.add_get("/api/v1/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port, statuses
    finally:
        await runner.cleanup()


async def test_health_check_passes_only_on_2xx(health_server: tuple[int, list[int]]) -> None:
    """The image's check exits 0 on 200, non-zero on 503 or 500, and when nothing listens."""
    port, statuses = health_server
    results = {}
    for status in (200, 204, 503, 500, 404):
        statuses[:] = [status]
        results[status] = await run_health_check(port)
    refused = await run_health_check(free_port())
    assert results == {200: 0, 204: 0, 503: 1, 500: 1, 404: 1}
    assert refused == 1


def test_make_help_lists_every_target() -> None:
    """`make help` has one line for each target of the Makefile, the compose ones included."""
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    assert {"up", "down", "logs", "clean", "run", "test"} <= targets
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}  # under `make test`
    result = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert sorted(listed) == sorted(targets)


def test_make_up_without_env_file_says_what_to_do(tmp_path: Path) -> None:
    """`make up` with no .env stops before docker, naming the file to copy and what to set."""
    result = subprocess.run(
        ["make", "-f", str(ROOT / "Makefile"), "up"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "cp .env.example .env" in result.stderr
    assert "POSTGRES_PASSWORD" in result.stderr
    assert "compose" not in result.stdout
