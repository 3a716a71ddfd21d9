"""What the image's builder stage does, done for real: build the wheel from a clean copy of the
tracked files, install it into a fresh environment without pip, and run it from there.

The commands are the Dockerfile's (`pip wheel --no-deps`, `venv --without-pip`,
`pip --python ... install`); the dependencies come from the package index through pip's cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from tests.support.deploy_files import ROOT, run_health_check, tracked_files
from tests.support.process import ServeProcess, free_port

pytestmark = pytest.mark.slow

PIP_ENV = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    migrations: list[str]  # file names shipped in src/cryptoetl/migrations

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, env=PIP_ENV)
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel built from the tracked files only, installed into a fresh pip-less venv."""
    base = tmp_path_factory.mktemp("wheel")
    checkout = base / "checkout"
    for name in tracked_files():
        source, target = ROOT / name, checkout / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    wheels, venv = base / "wheels", base / "venv"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), "."],
         cwd=checkout)  # fmt: skip
    (wheel,) = wheels.glob("cryptoetl-*.whl")
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
          "--quiet", str(wheel)])  # fmt: skip
    migrations = sorted(p.name for p in (checkout / "src/cryptoetl/migrations").glob("*.sql"))
    return Installed(wheel, venv, migrations)


def test_wheel_ships_the_package_and_its_migrations(installed: Installed) -> None:
    """Every tracked module and migration is in the wheel, with the console script; no tests."""
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    package = {n.removeprefix("src/") for n in tracked_files() if n.startswith("src/cryptoetl/")}
    assert package - names == set()
    assert {f"cryptoetl/migrations/{m}" for m in installed.migrations} <= names
    assert installed.migrations, "no migration shipped"
    assert not [n for n in names if n.startswith("tests/")]
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(installed.wheel).read(entry_points).decode()
    assert "cryptoetl = cryptoetl.cli.main:main" in text


def test_installed_command_runs_and_finds_its_migrations(
    installed: Installed, tmp_path: Path
) -> None:
    """`cryptoetl --help` runs; the installed package (not this checkout) loads every migration."""
    help_text = _run([installed.bin("cryptoetl"), "--help"], cwd=tmp_path).stdout
    assert "serve" in help_text
    assert "migrate" in help_text
    probe = (
        "import cryptoetl; from cryptoetl.db.migrate import load_migrations; "
        "print(cryptoetl.__file__); print(len(load_migrations()))"
    )
    location, count = _run([installed.bin("python"), "-c", probe], cwd=tmp_path).stdout.split()
    assert Path(location).is_relative_to(installed.venv)
    assert int(count) == len(installed.migrations)


def test_runtime_environment_has_no_installer(installed: Installed) -> None:
    """The environment the image copies holds no pip: nothing to install or build with."""
    assert not (installed.venv / "bin" / "pip").exists()
    pip = subprocess.run([installed.bin("python"), "-m", "pip"], capture_output=True, text=True)
    assert pip.returncode != 0
    assert "No module named pip" in pip.stderr


@pytest.mark.e2e
async def test_installed_service_migrates_and_passes_the_image_health_check(
    installed: Installed, empty_db_url: str, serve: Callable[..., ServeProcess], tmp_path: Path
) -> None:
    """Served from the wheel on an empty database, as in compose: migrated, healthy by the
    image's own check, stopped cleanly, and nothing written to its working dir or home."""
    workdir, home = tmp_path / "app", tmp_path / "home"
    workdir.mkdir()
    home.mkdir()
    dead = f"http://127.0.0.1:{free_port()}"  # no upstream is ever contacted
    served = serve(
        {
            "DATABASE_URL": empty_db_url,
            "HOME": str(home),
            "ETL_RUN_ON_STARTUP": "false",
            "ETL_INTERVAL_SECONDS": "3600",
            "COINPAPRIKA_BASE_URL": dead,
            "COINGECKO_BASE_URL": dead,
        },
        cwd=workdir,
        executable=installed.bin("cryptoetl"),
    )
    port = int(served.base_url.rsplit(":", 1)[1])
    assert await run_health_check(port, python=installed.bin("python")) == 0
    conn = await asyncpg.connect(empty_db_url)
    try:
        applied = await conn.fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        await conn.close()
    assert applied == len(installed.migrations)
    assert served.stop() == 0, served.log_text()
    assert list(workdir.iterdir()) == []
    assert list(home.iterdir()) == []
