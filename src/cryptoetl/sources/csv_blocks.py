"""Reading a CSV file in blocks of whole records, as string columns (blocking: run in a thread).

A `BlockReader` reads about `block_bytes` from a byte offset, cuts the block after its last
complete record (the last line end outside quotes), and hands the records over as Arrow string
columns parsed by pyarrow's CSV reader, with each record's line number, so that the cursor
(offset, line, prefix hash) covers exactly the blocks handed over. pyarrow's reader is given
one block at a time (not its own streaming reader) because resuming and lineage need the byte
offset and the line of every block, which its streaming reader does not tell.

pyarrow parses a block when every record of it is one line of UTF-8 text whose quotes are
well formed (RFC 4180), shorter than the CSV field size limit, and it has no NUL byte, no
byte-order mark and no lone carriage return:
then pyarrow and Python's `csv` module read it the same way. Any other block (a quoted field
spanning lines, Windows-1252 text, a malformed quote) is read record by record with Python's
`csv` module exactly as before. Either way, a record whose number of fields is wrong, or that
cannot be read, is a rejected row with the same reason as before; blank lines are skipped.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cryptoetl.sources.csv_files import NUL, decode
from cryptoetl.transform.arrow_arrays import from_numpy
from cryptoetl.transform.csv_columns import Block, RejectedRow, strings
from cryptoetl.transform.csv_rows import row_payload

BLOCK_BYTES = 2 << 20
# A block grows to this many times its size to end outside quotes, then is cut at a line end.
MAX_GROWTH = 4
_WELL_FORMED = r'^(?:[^",\r\n]*|"(?:[^"]|"")*")(?:,(?:[^",\r\n]*|"(?:[^"]|"")*"))*\r?\n?$'
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One block: its rows as columns, the rows rejected for their shape, the cursor after it."""

    block: Block
    rejected: list[RejectedRow]
    offset: int
    line: int
    prefix_sha256: str
    eof: bool
    first_line: int
    last_line: int

    @property
    def fetched(self) -> int:
        return len(self.block) + len(self.rejected)


def _cut(data: bytes, eof: bool) -> int:
    """The end of the last complete record of `data` (0: none yet)."""
    if eof:  # what is left is the last block
        return len(data)
    buffer = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(buffer == 10)
    quotes = np.flatnonzero(buffer == 34)
    if not len(newlines):
        return 0
    even = np.searchsorted(quotes, newlines) % 2 == 0
    candidates = np.flatnonzero(even)
    return int(newlines[candidates[-1]]) + 1 if len(candidates) else 0


def _lines(piece: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (without the line end) of every physical line of `piece`."""
    buffer = np.frombuffer(piece, np.uint8)
    newlines = np.flatnonzero(buffer == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(piece)]))
    if starts[-1] == len(piece):  # the piece ends with a line end: no line after it
        starts, ends = starts[:-1], ends[:-1]
    crs = (ends > starts) & (buffer[np.maximum(ends - 1, 0)] == 13)
    return starts, ends - crs


class BlockReader:
    """Reads `path` from `offset` (at line `line`, `digest` the hash of the bytes before)."""

    def __init__(
        self,
        path: Path,
        keys: Sequence[str],
        offset: int,
        line: int,
        digest: hashlib._Hash,
        block_bytes: int = BLOCK_BYTES,
    ) -> None:
        self.keys = tuple(keys)
        self.offset = offset
        self.line = line
        self.digest = digest
        self.block_bytes = block_bytes
        self._handle = path.open("rb")
        self._handle.seek(offset)

    def close(self) -> None:
        self._handle.close()

    def next_block(self) -> ReadBlock:
        data = b""
        want = self.block_bytes
        by_line = False
        while True:
            more = self._handle.read(want - len(data))
            eof = len(data) + len(more) < want
            data += more
            cut = _cut(data, eof)
            if cut or eof:
                break
            if want >= MAX_GROWTH * self.block_bytes and (last := data.rfind(b"\n")) >= 0:
                # no line end outside quotes in all this: a stray quote in an unquoted field,
                # which Python's csv reads literally; read these lines record by record
                cut, by_line = last + 1, True
                break
            want *= 2  # one record longer than the block: read on
        piece = data[:cut]
        self._handle.seek(self.offset + cut)
        eof = eof and cut == len(data)
        first = self.line
        block, rejected, lines = self._parse(piece, first, by_line)
        self.digest.update(piece)
        self.offset += cut
        self.line += lines
        return ReadBlock(
            block,
            rejected,
            self.offset,
            self.line,
            self.digest.hexdigest(),
            eof,
            first,
            self.line - 1,
        )

    def _parse(
        self, piece: bytes, first: int, by_line: bool
    ) -> tuple[Block, list[RejectedRow], int]:
        starts, ends = _lines(piece)
        simple = (
            not by_line
            and b"\x00" not in piece
            and _BOM not in piece
            and piece.count(b"\r") == piece.count(b"\r\n")
            # a line that may hold a field over Python's limit is refused as before
            and (not len(starts) or int((ends - starts).max()) < csv.field_size_limit())
        )
        if simple:
            try:
                piece.decode("utf-8")
            except UnicodeDecodeError:
                simple = False
        if simple and b'"' in piece:
            texts = pa.StringArray.from_buffers(
                len(starts),
                pa.py_buffer(np.concatenate((starts, [len(piece)])).astype(np.int32).tobytes()),
                pa.py_buffer(piece),
            )
            quoted = pc.match_substring(texts, '"')
            formed = pc.match_substring_regex(texts, _WELL_FORMED)
            simple = not pc.any(pc.and_(quoted, pc.invert(formed))).as_py()
        if simple and piece:
            parsed = self._arrow(piece, starts, ends, first)
            if parsed is not None:
                return (*parsed, len(starts))
        return (*self._python(piece, first), len(starts))

    def _arrow(
        self, piece: bytes, starts: np.ndarray, ends: np.ndarray, first: int
    ) -> tuple[Block, list[RejectedRow]] | None:
        invalid: dict[int, str] = {}
        known = True

        def on_invalid(row: pacsv.InvalidRow) -> str:
            nonlocal known
            if row.number is None:
                known = False
            else:
                invalid[row.number - 1] = row.text
            return "skip"

        names = [f"c{i}" for i in range(len(self.keys))]
        table = pacsv.read_csv(
            io.BytesIO(piece),
            read_options=pacsv.ReadOptions(
                column_names=names, use_threads=False, block_size=len(piece) + 1
            ),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=False, ignore_empty_lines=False, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        physical = np.ones(len(starts), np.bool_)
        physical[list(invalid)] = False
        valid = np.flatnonzero(physical)
        if not known or len(valid) != table.num_rows:
            return None
        keep = ends[valid] > starts[valid]  # an empty line carries nothing
        if len(self.keys) == 1:
            keep &= np.array([bool(piece[starts[j] : ends[j]].strip()) for j in valid], np.bool_)
        chosen = np.flatnonzero(keep)
        columns = {key: table.column(i).combine_chunks() for i, key in enumerate(self.keys)}
        if len(chosen) < table.num_rows:
            taken = from_numpy(chosen)
            columns = {key: values.take(taken) for key, values in columns.items()}
        rows = valid[chosen]
        extra, rejected = self._shaped(
            [(first + j, text) for j, text in sorted(invalid.items())], starts, ends, piece, first
        )
        if extra:
            extra_lines = [line for line, _ in extra]
            extra_columns = strings([values for _, values in extra], self.keys)
            columns = {
                key: pa.concat_arrays([columns[key], extra_columns[key]]) for key in self.keys
            }
            rows = np.concatenate((rows, np.array(extra_lines, np.int64) - first))
        lines = (rows + first).astype(np.int64)

        def raw(i: int) -> str:
            j = int(rows[i])
            return piece[starts[j] : ends[j]].decode("utf-8", errors="replace")

        return Block(columns, lines, raw), rejected

    def _shaped(
        self,
        records: list[tuple[int, str]],
        starts: np.ndarray,
        ends: np.ndarray,
        piece: bytes,
        first: int,
    ) -> tuple[list[tuple[int, list[str]]], list[RejectedRow]]:
        """Records pyarrow found of the wrong width, read with Python's `csv` as before."""
        kept: list[tuple[int, list[str]]] = []
        rejected: list[RejectedRow] = []
        for line, text in records:
            values = next(csv.reader([text]), [])
            if not values or (len(values) == 1 and not values[0].strip()):
                continue
            j = line - first
            raw = piece[starts[j] : ends[j]].decode("utf-8", errors="replace")
            payload = row_payload(self.keys, values)
            if isinstance(payload, str):
                rejected.append(RejectedRow(line, raw, f"line {line} {payload}"))
            else:
                kept.append((line, values[: len(self.keys)]))
        return kept, rejected

    def _python(self, piece: bytes, first: int) -> tuple[Block, list[RejectedRow]]:
        """Record by record with Python's `csv`, as the row path read every file."""
        pending: list[bytes] = []

        def physical() -> object:
            for raw in io.BytesIO(piece):
                pending.append(raw)
                yield decode(raw)

        reader = csv.reader(physical())  # type: ignore[arg-type]
        line = first
        kept: list[list[str]] = []
        lines: list[int] = []
        raws: list[str] = []
        rejected: list[RejectedRow] = []
        while True:
            start = line
            error = None
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                values, error = [], f"cannot be read as CSV: {exc}"
            consumed, pending[:] = list(pending), []
            line += len(consumed)
            if error is None and (not values or (len(values) == 1 and not values[0].strip())):
                continue
            text = b"".join(consumed).decode("utf-8", errors="replace").rstrip("\r\n")
            if error is None and any(NUL in value for value in values):
                error = "has a NUL byte, which PostgreSQL cannot store"
            payload = error if error is not None else row_payload(self.keys, values)
            if isinstance(payload, str):
                rejected.append(RejectedRow(start, text, f"line {start} {payload}"))
                continue
            kept.append(values[: len(self.keys)])
            lines.append(start)
            raws.append(text)
        return Block(strings(kept, self.keys), np.array(lines, np.int64), raws.__getitem__), (
            rejected
        )
