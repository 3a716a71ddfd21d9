"""Reading the deployment files the way their tools do, for tests/e2e/test_deploy*.py.

- `dockerfile_stages()`: the Dockerfile, parsed by Docker's own parser (the `dockerfile`
  package wraps it), split into its build stages.
- `interpolate()`: compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}`.
- `build_context()`: which files `.dockerignore` lets into the build context, following
  Docker's rules (last matching pattern wins; a pattern that matches a parent directory
  matches everything below it; `**` spans directories). A model of those rules, not Docker.
- `tracked_files()`: what a clean clone holds (`git ls-files`), so untracked junk in a
  developer's worktree cannot make a test pass.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dockerfile
import pytest

from tests.support import REPO

ROOT = REPO


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: `RUN --mount=x echo` is cmd RUN, flags, value."""

    cmd: str
    flags: tuple[str, ...]
    value: tuple[str, ...]
    exec_form: bool

    def flag(self, name: str) -> str | None:
        """The value of `--name=value`, or None."""
        for flag in self.flags:
            key, _, value = flag.partition("=")
            if key == f"--{name}":
                return value
        return None


def dockerfile_stages(path: Path = ROOT / "Dockerfile") -> dict[str, list[Instruction]]:
    """Each stage's instructions by stage name (`FROM x AS name`), in order; FROM first."""
    stages: dict[str, list[Instruction]] = {}
    current: list[Instruction] | None = None
    for command in dockerfile.parse_file(str(path)):
        instruction = Instruction(
            cmd=command.cmd.upper(),
            flags=tuple(command.flags),
            value=tuple(command.value),
            exec_form=bool(command.json),
        )
        if instruction.cmd == "FROM":
            value = instruction.value
            name = value[2] if len(value) == 3 and value[1].upper() == "AS" else str(len(stages))
            current = stages.setdefault(name, [])
        if current is not None:
            current.append(instruction)
    return stages


def healthcheck_argv() -> list[str]:
    """The final stage's HEALTHCHECK command (exec form), without the leading `CMD`."""
    final = list(dockerfile_stages().values())[-1]
    (check,) = [i for i in final if i.cmd == "HEALTHCHECK"]
    assert check.exec_form, "HEALTHCHECK must use the exec form"
    assert check.value[0] == "CMD"
    return list(check.value[1:])


async def run_health_check(port: int, python: str = sys.executable) -> int:
    """Run the image's HEALTHCHECK command against 127.0.0.1:`port`; return its exit status."""
    argv = healthcheck_argv()
    assert argv[0] == "python"
    process = await asyncio.create_subprocess_exec(
        python,
        *argv[1:],
        env={**os.environ, "API_PORT": str(port)},
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), timeout=30)


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution (`$$` is a literal `$`); a missing required one raises."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        value = env.get(name)
        missing = value is None or (value == "" and operator is not None and ":" in operator)
        if operator is not None and operator.endswith("?") and missing:
            raise KeyError(f"{name}: {argument}")
        if operator is not None and operator.endswith("-") and missing:
            return argument
        return value or ""

    parts = text.split("$$")
    return "$".join(_VARIABLE.sub(substitute, part) for part in parts)


def variables(text: str) -> set[str]:
    """Every variable name a compose file interpolates."""
    return {match.group(1) for match in _VARIABLE.finditer(text.replace("$$", ""))}


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
            out.append(".*" if i >= len(pattern) else "(?:.*/)?")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("^" + "".join(out) + "$")


Pattern = tuple[bool, re.Pattern[str]]  # (re-includes?, regex)


def dockerignore_patterns(path: Path = ROOT / ".dockerignore") -> list[Pattern]:
    """Each pattern line, in order."""
    patterns: list[Pattern] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        line = line.removeprefix("!").strip().strip("/")
        patterns.append((include, _glob_regex(line)))
    return patterns


def build_context(files: list[str], path: Path = ROOT / ".dockerignore") -> set[str]:
    """The subset of `files` (relative, `/`-separated) that the build context would hold."""
    patterns = dockerignore_patterns(path)
    kept: set[str] = set()
    for name in files:
        parents = name.split("/")[:-1]
        candidates = [name] + ["/".join(parents[: i + 1]) for i in range(len(parents))]
        excluded = False
        for include, regex in patterns:
            if any(regex.match(candidate) for candidate in candidates):
                excluded = not include
        if not excluded:
            kept.add(name)
    return kept


def tracked_files() -> list[str]:
    """Files git tracks in this checkout (what a clean clone has), that exist on disk."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: cannot tell tracked files from junk")
    names = [name for name in listing.decode().split("\0") if name]
    return [name for name in names if (ROOT / name).is_symlink() or (ROOT / name).exists()]
