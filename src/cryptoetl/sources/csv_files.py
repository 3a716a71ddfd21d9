"""Finding CSV files, reading their headers, and what a cursor remembers of each (blocking).

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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from cryptoetl.errors import CsvFileError

HASH_BLOCK = 1 << 20
# A header must end within this many bytes: reading it is bounded and linear.
MAX_HEADER_BYTES = 64 * 1024
# Text PostgreSQL cannot store in a text column.
NUL = "\x00"


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
    # the number convention each numeric column has shown so far (see `csv_columns`)
    number_formats: dict[str, str] = field(default_factory=dict)

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


_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r\f") + b"\x7f"


def sniff(head: bytes) -> str | None:
    """Why a file whose first bytes are `head` is not CSV text, or None (by its magic bytes)."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip-compressed data, not CSV text (decompress it first)"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "a zip archive, not CSV text (extract it first)"
    return None


def is_binary(header: bytes) -> bool:
    """A header line with a NUL byte, or more than 5 % control bytes, is not text."""
    if b"\x00" in header:
        return True
    controls = len(header) - len(header.translate(None, _CONTROL))
    return controls * 20 > len(header)


def _header_end(head: bytes) -> int | None:
    """Where the first record of `head` ends (after its line end), or None: the first line end
    outside quotes. One pass over the bytes."""
    quotes = 0
    start = 0
    while (newline := head.find(b"\n", start)) >= 0:
        quotes += head.count(b'"', start, newline)
        start = newline + 1
        if quotes % 2 == 0:
            return start
    return None


def read_header(path: Path) -> tuple[list[str], int, int, str]:
    """The header cells, the byte offset after it, the lines it took, and its raw text.

    Reads at most `MAX_HEADER_BYTES`; raises `CsvFileError` for a file that is not CSV text
    (compressed, binary), a header that does not end within that many bytes or ends inside a
    quote, or one that cannot be read at all.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(MAX_HEADER_BYTES)
    except OSError as exc:
        raise CsvFileError(path.name, f"cannot be read: {exc.strerror or exc}") from None
    if (why := sniff(head)) is not None:
        raise CsvFileError(path.name, why)
    if not head:
        return [], 0, 0, ""
    end = _header_end(head)
    if end is None:
        if is_binary(head):
            raise CsvFileError(path.name, "binary data, not CSV text")
        if len(head) >= MAX_HEADER_BYTES:
            raise CsvFileError(
                path.name,
                f"no header line within the first {MAX_HEADER_BYTES // 1024} KiB "
                "(an unclosed quote, or not a CSV file)",
            )
        if head.count(b'"') % 2:
            raise CsvFileError(path.name, "the header has an unclosed quote")
        end = len(head)  # the whole file is its header line
    raw = head[:end]
    if is_binary(raw):
        raise CsvFileError(path.name, "binary data, not CSV text")
    text = decode(raw)
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise CsvFileError(path.name, f"the header cannot be read as CSV: {exc}") from None
    lines = raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)
    return (rows[0] if rows else []), end, lines, text.rstrip("\r\n")
