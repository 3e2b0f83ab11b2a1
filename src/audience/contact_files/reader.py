"""Stream the records of a CSV or JSON Lines file, each with the line it starts on.

A file is read from a path (the file client) or from any stream of bytes (an uploaded file
kept in the database, for the server's import jobs); gzip is recognised by its content.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

Format = Literal["csv", "jsonl"]

DELIMITERS = (",", ";", "\t")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
CHUNK_BYTES = 1 << 20
BOM = codecs.BOM_UTF8
GZIP_MAGIC = b"\x1f\x8b"


class FileError(Exception):
    """A file that cannot be read as it is: nothing more of it is imported."""


@dataclass(frozen=True, slots=True)
class Row:
    """One record: the line it starts on (1-based) and its cells (CSV) or its text (JSON Lines)."""

    line: int
    raw: list[str] | str


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What one pass over the bytes tells: content hash, BOM, and about how many records."""

    sha256: str
    bom: bool
    records: int
    format: Format


def detect_format(path: Path) -> Format:
    """JSON Lines by suffix (.jsonl, .ndjson) or when the file starts with `{`; else CSV."""
    if path.suffix.lower() in JSONL_SUFFIXES:
        return "jsonl"
    with _open_binary(path) as f:
        return format_of(f.read(4096))


def format_of(head: bytes) -> Format:
    """JSON Lines when the (decompressed) content starts with `{`; else CSV."""
    return "jsonl" if head.removeprefix(BOM).lstrip().startswith(b"{") else "csv"


def scan(path: Path, fmt: Format) -> FileFacts:
    """Hash the file, check it is UTF-8 and count its records, in constant memory."""
    with _open_binary(path) as f:
        return scan_stream(f, fmt)


def scan_stream(stream: IO[bytes], fmt: Format) -> FileFacts:
    """scan() of a stream of (decompressed) bytes, read to its end."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    counter = _RecordCounter(quoted=fmt == "csv")
    offset = 0
    bom = False
    while chunk := stream.read(CHUNK_BYTES):
        if offset == 0:
            bom = chunk.startswith(BOM)
        digest.update(chunk)
        _check_utf8(decoder, chunk, offset, counter.lines)
        counter.feed(chunk)
        offset += len(chunk)
    _check_utf8(decoder, b"", offset, counter.lines, final=True)
    records = counter.records() - (1 if fmt == "csv" else 0)
    return FileFacts(sha256=digest.hexdigest(), bom=bom, records=max(records, 0), format=fmt)


def decompressed(stream: IO[bytes]) -> IO[bytes]:
    """The stream's content, gunzipped when it is gzip (recognised by its first bytes)."""
    raw: Any = stream
    buffered: Any = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        gunzipped: Any = gzip.GzipFile(fileobj=buffered, mode="rb")
        gunzipped.myfileobj = buffered  # closed with it, as when GzipFile opens a path
        buffered = gunzipped
    return buffered  # type: ignore[no-any-return]


def _open_binary(path: Path) -> IO[bytes]:
    try:
        return decompressed(path.open("rb"))
    except OSError as exc:
        raise FileError(f"cannot read {path}: {exc.strerror or exc}") from None


def _check_utf8(
    decoder: codecs.IncrementalDecoder, chunk: bytes, offset: int, lines: int, final: bool = False
) -> None:
    try:
        decoder.decode(chunk, final)
    except UnicodeDecodeError as exc:
        line = lines + chunk[: exc.start].count(b"\n") + 1
        raise FileError(
            f"the file is not UTF-8 (byte {chunk[exc.start]:#04x} at offset {offset + exc.start}, "
            f"line {line}); save it as UTF-8 and try again"
        ) from None


class Utf8Checked(io.RawIOBase):
    """A stream's bytes as they are, checked to be UTF-8 on the way: the first byte that is
    not raises FileError naming its offset and line (a text decoder reads ahead of the
    records, so the record being read when it fails is not the line at fault)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._offset = 0
        self._lines = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        _check_utf8(self._decoder, data, self._offset, self._lines, final=not data)
        self._offset += len(data)
        self._lines += data.count(b"\n")
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()


class _RecordCounter:
    """Counts newlines outside double quotes (a doubled quote toggles twice: no effect)."""

    def __init__(self, *, quoted: bool) -> None:
        self.quoted = quoted
        self.lines = 0
        self.newlines = 0
        self.inside = False
        self.last = b""

    def feed(self, chunk: bytes) -> None:
        self.lines += chunk.count(b"\n")
        self.last = chunk[-1:]
        if not self.quoted:
            self.newlines += chunk.count(b"\n")
            return
        parts = chunk.split(b'"')
        start = 1 if self.inside else 0
        self.newlines += sum(part.count(b"\n") for part in parts[start::2])
        self.inside = self.inside ^ (len(parts) % 2 == 0)

    def records(self) -> int:
        unterminated = self.last not in (b"", b"\n")
        return self.newlines + (1 if unterminated else 0)


# --- CSV ----------------------------------------------------------------------------------------


def detect_delimiter(first_line: str) -> str:
    """The delimiter that splits the header line into the most columns (`,` on a tie)."""
    best, widest = ",", 1
    for delimiter in DELIMITERS:
        width = len(next(csv.reader([first_line], delimiter=delimiter), []))
        if width > widest:
            best, widest = delimiter, width
    return best


class CsvSource:
    """A CSV file opened for streaming: its delimiter, its header, then its rows."""

    def __init__(self, text: IO[str], name: str) -> None:
        self.name = name
        self._file = text
        try:
            first = text.readline()
            self.delimiter = detect_delimiter(first)
            self._reader = csv.reader(itertools.chain([first], text), delimiter=self.delimiter)
            self.header = self._read_header()
        except BaseException:
            text.close()
            raise

    def _read_header(self) -> list[str]:
        for cells in self._reader:
            if any(cell.strip() for cell in cells):
                return [cell.strip() for cell in cells]
        raise FileError(f"{self.name} is empty: a CSV file needs a header line")

    def rows(self) -> Iterator[Row]:
        """Every non-blank record after the header, with the line it starts on."""
        while True:
            line = self._reader.line_num + 1
            try:
                cells = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise FileError(f"line {line}: {exc}") from None
            except UnicodeDecodeError as exc:
                raise FileError(f"line {line}: not UTF-8 ({exc.reason})") from None
            if any(cell.strip() for cell in cells):
                yield Row(line, cells)

    def close(self) -> None:
        self._file.close()


class JsonLinesSource:
    """A JSON Lines file opened for streaming: one record per non-blank line."""

    delimiter = ","

    def __init__(self, text: IO[str], name: str) -> None:
        self.name = name
        self.header: list[str] = []
        self._file = text

    def rows(self) -> Iterator[Row]:
        """Every non-blank line, without its line break."""
        number = 0
        try:
            for number, text in enumerate(self._file, start=1):
                if text.strip():
                    yield Row(number, text.rstrip("\r\n"))
        except UnicodeDecodeError as exc:
            raise FileError(f"line {number + 1}: not UTF-8 ({exc.reason})") from None

    def close(self) -> None:
        self._file.close()


Source = CsvSource | JsonLinesSource


def open_source(path: Path, fmt: Format) -> Source:
    """The file opened for reading records."""
    try:
        return open_stream(_open_binary(path), fmt, str(path))
    except OSError as exc:
        raise FileError(f"cannot read {path}: {exc.strerror or exc}") from None


def open_stream(binary: IO[bytes], fmt: Format, name: str) -> Source:
    """Records from a stream of (decompressed) bytes: UTF-8, with or without a BOM."""
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="" if fmt == "csv" else None)
    return CsvSource(text, name) if fmt == "csv" else JsonLinesSource(text, name)
