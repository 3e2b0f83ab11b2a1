"""A CSV file as an attachment, streamed: its first line is produced before the answer
starts, so that a lookup that fails (404) is answered as an error, not as a broken file."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.responses import StreamingResponse


def csv_attachment(lines: Iterator[bytes], filename: str) -> StreamingResponse:
    first = next(lines)
    return StreamingResponse(
        _chain(first, lines),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest
