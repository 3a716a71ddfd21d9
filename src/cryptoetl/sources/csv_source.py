"""The CSV source: every file `CSV_FILE_PATH` names, streamed in chunks, resumable by offset.

The checkpoint cursor is `{"files": {"<absolute path>": FileState}}`. Each batch is a chunk of
rows of one file and carries the cursor as it stands once that chunk is committed, so a load
killed at any point resumes at the last committed chunk. An unchanged file is skipped without
being read; an appended one continues from its offset; a rewritten one is read again under a
new fingerprint (the unified table's unique key keeps that idempotent).

A file that cannot be used at all (not CSV text: compressed or binary; a header that does not
end within 64 KiB or ends inside a quote; no price or coin column) becomes one rejection naming
the file and the reason; the other files still load, and the next run skips it until it
changes. A record that cannot be read (a field over the CSV field size limit, a NUL byte) is
one rejected row; the rest of its chunk loads.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from pydantic import Field

from cryptoetl.config import SourceSettings
from cryptoetl.errors import CsvFileError, SourceError
from cryptoetl.models import (
    Accepted,
    Batch,
    LocatorKind,
    RawLocator,
    Rejection,
    ResponseMeta,
    SourceRecord,
)
from cryptoetl.sources.base import SourceContext, SourceInfo
from cryptoetl.sources.csv_blocks import BLOCK_BYTES, BlockReader
from cryptoetl.sources.csv_files import FileState, plan, read_header, resolve
from cryptoetl.transform.common import raw_text
from cryptoetl.transform.csv_columns import (
    FileRows,
    NumberFormats,
    RejectedRow,
    Rows,
    read_block,
)
from cryptoetl.transform.csv_rows import CsvLayout, map_header, read_row
from cryptoetl.transform.csv_stage import StagedRows, stage_rows

log = structlog.get_logger(__name__)

NAME = "csv"
FILE_ERROR = "_file_error"


class CsvSettings(SourceSettings):
    """The CSV source's settings (environment variables of the same names)."""

    csv_file_path: str = Field(
        default="data/sample.csv",
        min_length=1,
        description="A file, a directory (every *.csv in it) or a glob.",
    )
    csv_block_bytes: int = Field(
        default=BLOCK_BYTES,
        ge=64 * 1024,
        le=256 * 1024 * 1024,
        description="Bytes of a CSV file read, validated and committed at a time.",
    )


@dataclass(frozen=True, slots=True)
class _Step:
    """What reading one block gives the loader, and where the file stands after it."""

    rows: Rows
    staged: StagedRows
    rejections: list[Rejection]
    formats_shown: dict[str, str]
    fetched: int
    first_line: int
    last_line: int
    offset: int
    line: int
    prefix_sha256: str
    eof: bool


def _cursor_files(cursor: Mapping[str, Any]) -> dict[str, Any]:
    files = cursor.get("files") if isinstance(cursor, Mapping) else None
    return dict(files) if isinstance(files, Mapping) else {}


class CsvSource:
    """Reads the files of `CSV_FILE_PATH`; see the module docstring."""

    info = SourceInfo(NAME, LocatorKind.FILE_LINE, match_rank=2, settings=CsvSettings)

    def __init__(self, context: SourceContext, *, block_bytes: int | None = None) -> None:
        self.context = context
        settings = context.settings.of(CsvSettings)
        self.pattern = settings.csv_file_path
        self.block_bytes = block_bytes or settings.csv_block_bytes

    async def fetch(self, cursor: Mapping[str, Any]) -> AsyncIterator[Batch]:
        paths = await asyncio.to_thread(resolve, self.pattern, Path.cwd())
        if not paths:
            raise SourceError(NAME, f"no CSV file matches CSV_FILE_PATH={self.pattern!r}")
        files = _cursor_files(cursor)
        yielded = False
        for path in paths:
            key = str(path)
            saved = FileState.from_json(files.get(key))
            action, state, digest = await asyncio.to_thread(plan, path, saved)
            if action == "skip":
                log.info("csv_file_unchanged", file=key)
                continue
            log.info("csv_file_reading", file=key, action=action, from_line=state.line)
            async for batch in self._read_file(path, state, digest, files):
                yielded = True
                yield batch
        if not yielded:
            # every file was read before and is unchanged: an answer, with nothing new in it
            yield self._batch(paths[0], [], files, "no new rows", {}, 0.0)

    async def _read_file(
        self, path: Path, state: FileState, digest: Any, files: dict[str, Any]
    ) -> AsyncIterator[Batch]:
        key = str(path)
        mtime = datetime.fromtimestamp(state.mtime_ns / 1e9, UTC)
        header_text = ""
        try:
            header, header_end, header_lines, header_text = await asyncio.to_thread(
                read_header, path
            )
            if not header:
                raise CsvFileError(key, "empty file: no header line")
            layout = map_header(header, path.name)
        except CsvFileError as exc:
            files[key] = replace(
                state, offset=state.size, complete=True, error=exc.reason
            ).to_json()
            item = SourceRecord({FILE_ERROR: exc.reason}, position=1, raw_text=header_text)
            where = {"file_path": key, "name": path.name}
            yield self._batch(path, [item], files, f"{path.name}: unusable", where, 0.0)
            return
        # what `transform` needs to read a record of this file on its own
        context: dict[str, Any] = {
            "layout": layout,
            "file_path": key,
            "name": path.name,
            "fingerprint": state.fingerprint,
            "mtime": mtime,
        }
        formats = NumberFormats.from_json(state.number_formats)
        reader = await asyncio.to_thread(
            self._open, path, layout, state, digest, header_end, header_lines
        )
        try:
            while True:
                started = time.perf_counter()
                start_offset = reader.offset
                step = await asyncio.to_thread(
                    self._next_block, reader, layout, mtime, formats, path
                )
                elapsed = (time.perf_counter() - started) * 1000
                for column, shown in step.formats_shown.items():
                    log.info(
                        "csv_number_format",
                        file=key,
                        column=column,
                        format=shown,
                        from_line=step.first_line,
                    )
                state = replace(
                    state,
                    offset=step.offset,
                    line=step.line,
                    prefix_sha256=step.prefix_sha256,
                    complete=step.eof,
                    number_formats=formats.to_json(),
                )
                files[key] = state.to_json()
                if step.fetched or step.eof:
                    rows = FileRows(
                        fingerprint=state.fingerprint,
                        path=key,
                        size=state.size,
                        mtime_ns=state.mtime_ns,
                        first_line=step.first_line,
                        last_line=step.last_line,
                        start_offset=start_offset,
                        end_offset=step.offset,
                        rows=step.rows,
                        staged=step.staged,
                        rejections=step.rejections,
                        number_formats=formats.to_json(),
                    )
                    label = f"{path.name} lines {step.first_line}-{step.last_line}"
                    batch = self._batch(path, [], files, label, context, elapsed)
                    yield replace(batch, columns=rows)
                    # the block is the loader's now: hold no reference to it while the next
                    # one is read (at most the loading, the waiting and the next block live)
                    del rows, batch
                if step.eof:
                    return
                del step
        finally:
            reader.close()

    def _next_block(
        self,
        reader: BlockReader,
        layout: CsvLayout,
        mtime: datetime,
        formats: NumberFormats,
        path: Path,
    ) -> _Step:
        """Read, validate and stage the next block (in a worker thread: none of this per-row
        work runs on the event loop). Only what the loader needs is returned: the block's text
        and string columns are dropped here."""
        block = reader.next_block()
        result = read_block(
            layout, block.block, default_observed_at=mtime, now=self.context.now(), formats=formats
        )
        key = str(path)
        rejections = [
            Rejection(f"{path.name}:{r.line}", r.raw, r.reason, file=key, line=r.line)
            for r in sorted((*block.rejected, *result.rejected), key=_line)
        ]
        return _Step(
            rows=result.rows,
            staged=stage_rows(result.rows),
            rejections=rejections,
            formats_shown=result.formats_shown,
            fetched=block.fetched,
            first_line=block.first_line,
            last_line=block.last_line,
            offset=block.offset,
            line=block.line,
            prefix_sha256=block.prefix_sha256,
            eof=block.eof,
        )

    def _open(
        self,
        path: Path,
        layout: CsvLayout,
        state: FileState,
        digest: Any,
        header_end: int,
        header_lines: int,
    ) -> BlockReader:
        if state.offset == 0:
            # the header is part of what has been read: hash it, count its lines
            with path.open("rb") as handle:
                digest = hashlib.sha256(handle.read(header_end))
            return BlockReader(
                path, layout.keys, header_end, 1 + header_lines, digest, self.block_bytes
            )
        return BlockReader(path, layout.keys, state.offset, state.line, digest, self.block_bytes)

    def _batch(
        self,
        path: Path,
        items: list[SourceRecord],
        files: dict[str, Any],
        label: str,
        context: Mapping[str, Any],
        elapsed_ms: float,
    ) -> Batch:
        meta = ResponseMeta(
            url=path.as_uri(),
            status=200,
            fetched_at=self.context.now(),
            elapsed_ms=elapsed_ms,
        )
        cursor = {"files": dict(files)}
        return Batch(NAME, items, meta, cursor, label, context)

    def transform(self, item: SourceRecord, batch: Batch) -> Accepted | Rejection:
        file = str(batch.context.get("file_path", ""))
        name = str(batch.context.get("name", file))
        raw = raw_text(item)
        if FILE_ERROR in item.payload:
            return Rejection(name, raw, str(item.payload[FILE_ERROR]), file=file, line=1)
        locator = f"{name}:{item.position}"
        layout: CsvLayout = batch.context["layout"]
        result = read_row(
            layout,
            item.payload,
            default_observed_at=batch.context["mtime"],
            now=self.context.now(),
        )
        if isinstance(result, list):
            return Rejection(locator, raw, "; ".join(result), file=file, line=item.position)
        fingerprint = str(batch.context["fingerprint"])
        return Accepted(result, RawLocator(key=fingerprint, line=item.position), item)


def _line(rejected: RejectedRow) -> int:
    return rejected.line
