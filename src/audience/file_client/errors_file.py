"""The errors file: every failed row as the original row, behind its line, email and reason."""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import msgspec

from audience.contact_files.mapping import RESERVED
from audience.contact_files.reader import Format
from audience.file_client.untrusted import printable


def default_errors_path(source: Path, fmt: Format) -> Path:
    """`contacts.csv` → `contacts.errors.csv`; `contacts.jsonl` → `contacts.errors.jsonl`."""
    return source.with_name(f"{source.stem}.errors.{'csv' if fmt == 'csv' else 'jsonl'}")


class ErrorsFile:
    """Failed rows as the original rows, behind `_line`, `_email` and `_error`.

    The file is created at the first failure. Importing it again works as is: those three
    columns (keys, for JSON Lines) are ignored by the importer. The errors of a JSON Lines
    file are JSON Lines, unless `path` ends in `.csv`: then a CSV file of `_line`, `_email`,
    `_error` and `_raw` (the line as it was), for reading rather than importing again.
    """

    def __init__(
        self,
        path: Path,
        *,
        fmt: Format,
        header: Sequence[str] = (),
        delimiter: str = ",",
        bom: bool = False,
        keep_bytes: int = 0,
    ) -> None:
        self.path = path
        self.fmt = fmt
        #: CSV out: a CSV file's errors, and a JSON Lines file's when `path` ends in `.csv`.
        self.csv = fmt == "csv" or path.suffix.lower() == ".csv"
        self.header = list(header)
        self.positions = [i for i, name in enumerate(header) if name not in RESERVED]
        self.delimiter = delimiter
        self.bom = bom
        self.count = 0
        self._file: IO[str] | None = None
        self._writer: Any = None
        _keep_prefix(path, keep_bytes)

    def write(self, line: int, email: str, reason: str, raw: list[str] | str) -> None:
        """Append one failed row; the reason is one line of printable text (see untrusted.py)."""
        reason = printable(reason)
        if self._file is None:
            self._open()
        assert self._file is not None
        if self.fmt == "csv":
            self._writer.writerow([line, email, reason, *self._original(raw)])
        elif self.csv:
            self._writer.writerow([line, email, reason, _text(raw)])
        else:
            self._file.write(_json_line(line, email, reason, raw) + "\n")
        self.count += 1

    def size(self) -> int:
        """Bytes written so far (everything flushed)."""
        if self._file is not None:
            self._file.flush()
        return self.path.stat().st_size if self.path.exists() else 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self) -> None:
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        encoding = "utf-8-sig" if fresh and self.bom else "utf-8"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding=encoding, newline="")
        if self.csv:
            self._writer = csv.writer(self._file, delimiter=self.delimiter)
        if self.csv and fresh:
            columns = self._original(self.header) if self.fmt == "csv" else [RESERVED[3]]
            self._writer.writerow([*RESERVED[:3], *columns])

    def _original(self, raw: list[str] | str) -> list[str]:
        cells = [raw] if isinstance(raw, str) else raw
        kept = [cells[i] if i < len(cells) else "" for i in self.positions]
        return kept + list(cells[len(self.header) :])


def _keep_prefix(path: Path, keep_bytes: int) -> None:
    """Start over (remove) or keep what a resumed run had already written."""
    if keep_bytes <= 0:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    elif path.exists():
        os.truncate(path, min(keep_bytes, path.stat().st_size))


def _text(raw: list[str] | str) -> str:
    return raw if isinstance(raw, str) else ",".join(raw)


def _json_line(line: int, email: str, reason: str, raw: list[str] | str) -> str:
    text = _text(raw)
    head: dict[str, Any] = {"_line": line, "_email": email, "_error": reason}
    try:
        data = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):
        data = None
    if isinstance(data, dict):
        body = {k: v for k, v in data.items() if k not in RESERVED}
        return msgspec.json.encode({**head, **body}).decode()
    return msgspec.json.encode({**head, "_raw": text}).decode()
