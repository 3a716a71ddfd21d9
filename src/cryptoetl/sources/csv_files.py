"""Finding CSV files and reading them in chunks from a byte offset (blocking: run in a thread).

A `FileState` is what the checkpoint remembers of one file: its fingerprint, how far it was
read (byte offset and line), a SHA-256 of the bytes read so far, and the size and modification
time seen then. `plan` compares it with the file on disk and says whether to skip it, continue
it (the same file, appended or interrupted), or read it again from the start (rewritten).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

HASH_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class FileState:
    fingerprint: str
    offset: int = 0
    line: int = 1
    prefix_sha256: str = hashlib.sha256().hexdigest()
    size: int = 0
    mtime_ns: int = 0
    complete: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> FileState | None:
        if not isinstance(value, dict):
            return None
        try:
            return cls(**{k: value[k] for k in cls.__dataclass_fields__ if k in value})
        except TypeError:
            return None


def resolve(pattern: str, base: Path | None = None) -> list[Path]:
    """A file, every `*.csv` of a directory, or a glob; sorted, absolute."""
    path = Path(pattern).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if path.is_dir():
        return sorted(p.resolve() for p in path.glob("*.csv") if p.is_file())
    if path.is_file():
        return [path.resolve()]
    if any(ch in pattern for ch in "*?["):
        return sorted(
            Path(p).resolve() for p in glob.glob(str(path), recursive=True) if Path(p).is_file()
        )
    return []


def hash_prefix(path: Path, length: int) -> hashlib._Hash:
    """SHA-256 of the first `length` bytes of the file."""
    digest = hashlib.sha256()
    remaining = length
    with path.open("rb") as handle:
        while remaining > 0:
            block = handle.read(min(HASH_BLOCK, remaining))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest


def new_fingerprint(path: Path, size: int, mtime_ns: int) -> str:
    """Names one version of one file: its path, first bytes, size and time when first seen."""
    digest = hashlib.sha256(f"{path}\0{size}\0{mtime_ns}\0".encode())
    with path.open("rb") as handle:
        digest.update(handle.read(64 * 1024))
    return digest.hexdigest()[:32]


Action = Literal["skip", "continue", "restart"]


def plan(path: Path, state: FileState | None) -> tuple[Action, FileState, hashlib._Hash]:
    """What to do with `path` given the checkpoint's `state`, and the state to go on from."""
    stat = path.stat()
    size, mtime_ns = stat.st_size, stat.st_mtime_ns
    unchanged = state is not None and state.size == size and state.mtime_ns == mtime_ns
    if state is not None and unchanged and (state.complete or state.offset >= size):
        return "skip", state, hashlib.sha256()
    if state is not None and state.offset > 0 and state.offset <= size:
        digest = hash_prefix(path, state.offset)
        if digest.hexdigest() == state.prefix_sha256:
            return "continue", replace(state, size=size, mtime_ns=mtime_ns, complete=False), digest
    fresh = FileState(
        fingerprint=new_fingerprint(path, size, mtime_ns), size=size, mtime_ns=mtime_ns
    )
    return "restart", fresh, hashlib.sha256()


def decode(raw: bytes) -> str:
    """UTF-8 (BOM dropped), else Windows-1252: what Excel writes."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def read_header(path: Path) -> tuple[list[str], int, int, str]:
    """The header cells, the byte offset after it, the lines it took, and its raw text."""
    with path.open("rb") as handle:
        lines: list[str] = []
        consumed = 0
        while True:
            raw = handle.readline()
            if not raw:
                break
            consumed += len(raw)
            lines.append(decode(raw))
            text = "".join(lines)
            try:
                rows = list(csv.reader(io.StringIO(text)))
            except csv.Error:
                rows = []
            # a quoted header cell may span lines: stop once the text parses as one record
            if len(rows) == 1 and text.count('"') % 2 == 0:
                return rows[0], consumed, len(lines), text.rstrip("\r\n")
        if not lines:
            return [], 0, 0, ""
        text = "".join(lines)
        rows = list(csv.reader(io.StringIO(text)))
        return (rows[0] if rows else []), consumed, len(lines), text.rstrip("\r\n")


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    values: list[str]
    raw: str


@dataclass(frozen=True, slots=True)
class Chunk:
    rows: list[Row]
    offset: int
    line: int
    prefix_sha256: str
    eof: bool


class ChunkReader:
    """Reads records from a byte offset in chunks, tracking offset, line and prefix hash.

    Not async: call `next_chunk` in a worker thread. A quoted field may span lines; a record's
    line is where it starts.
    """

    def __init__(self, path: Path, offset: int, line: int, digest: hashlib._Hash) -> None:
        self.path = path
        self.offset = offset
        self.line = line
        self.digest = digest
        self._handle = path.open("rb")
        self._handle.seek(offset)
        self._pending: list[bytes] = []
        self._lines = self._physical_lines()
        self._reader = csv.reader(self._lines)

    def _physical_lines(self) -> Iterator[str]:
        for raw in self._handle:
            self._pending.append(raw)
            yield decode(raw)

    def next_chunk(self, max_rows: int) -> Chunk:
        rows: list[Row] = []
        eof = False
        while len(rows) < max_rows:
            start_line = self.line
            try:
                values = next(self._reader)
            except StopIteration:
                eof = True
                break
            except csv.Error as exc:
                values = [f"<unreadable: {exc}>"]
            consumed = self._pending
            self._pending = []
            for raw in consumed:
                self.digest.update(raw)
                self.offset += len(raw)
            self.line += len(consumed)
            if not values or (len(values) == 1 and not values[0].strip()):
                continue  # a blank line carries nothing
            text = b"".join(consumed).decode("utf-8", errors="replace").rstrip("\r\n")
            rows.append(Row(start_line, values, text))
        return Chunk(rows, self.offset, self.line, self.digest.hexdigest(), eof)

    def close(self) -> None:
        self._handle.close()
