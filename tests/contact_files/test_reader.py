"""Streaming CSV and JSON Lines: delimiters, BOM, quoted multi-line rows and their line numbers."""

from __future__ import annotations

import codecs
import gzip
from pathlib import Path

import pytest

from audience.contact_files.reader import (
    FileError,
    detect_delimiter,
    detect_format,
    open_source,
    scan,
)


def write(tmp_path: Path, text: str, name: str = "contacts.csv", bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + text.encode())
    return path


def read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    source = open_source(path, "csv")
    try:
        return source.header, [(row.line, list(row.raw)) for row in source.rows()]
    finally:
        source.close()


@pytest.mark.parametrize(
    ("line", "delimiter"),
    [
        ("email,first_name,last_name\n", ","),
        ("email;first_name;last_name\r\n", ";"),
        ("email\tfirst_name\tlast_name\n", "\t"),
        ('"email";"name, full";"x"\n', ";"),
        ("email\n", ","),
        ("e,mail;first;last\n", ";"),
    ],
)
def test_the_delimiter_is_the_one_that_splits_the_header_most(line: str, delimiter: str) -> None:
    assert detect_delimiter(line) == delimiter


@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_with_or_without_bom_and_each_delimiter(
    tmp_path: Path, bom: bool, delimiter: str
) -> None:
    text = delimiter.join(["Email", "First Name"]) + "\r\n"
    text += delimiter.join(["a@example.com", "Ann"]) + "\r\n"
    path = write(tmp_path, text, bom=bom)
    header, rows = read_csv(path)
    assert header == ["Email", "First Name"]
    assert rows == [(2, ["a@example.com", "Ann"])]
    assert scan(path, "csv").bom is bom


def test_multi_line_quoted_rows_keep_their_starting_line_numbers(tmp_path: Path) -> None:
    text = (
        "email,address_line_1,notes\n"  # line 1
        'a@example.com,"1 Main St\nFloor 2\nRoom 3",plain\n'  # lines 2-4
        "b@example.com,x,y\n"  # line 5
        "\n"  # line 6: blank, skipped
        'c@example.com,"say ""hi""\r\nthere","a,b"\r\n'  # lines 7-8
        "d@example.com,,\n"  # line 9
    )
    header, rows = read_csv(write(tmp_path, text))
    assert header == ["email", "address_line_1", "notes"]
    assert rows == [
        (2, ["a@example.com", "1 Main St\nFloor 2\nRoom 3", "plain"]),
        (5, ["b@example.com", "x", "y"]),
        (7, ["c@example.com", 'say "hi"\r\nthere', "a,b"]),
        (9, ["d@example.com", "", ""]),
    ]


def test_blank_lines_before_the_header_and_empty_rows_are_skipped(tmp_path: Path) -> None:
    header, rows = read_csv(write(tmp_path, "\n\nEmail\n,\na@example.com\n"))
    assert header == ["Email"]
    assert rows == [(5, ["a@example.com"])]


def test_an_empty_file_has_no_header(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="is empty"):
        open_source(write(tmp_path, "\n\n"), "csv")


def test_the_scan_counts_records_not_lines(tmp_path: Path) -> None:
    text = 'email,notes\na@example.com,"x\ny\nz"\nb@example.com,"q ""\n"""\nc@example.com,w'
    facts = scan(write(tmp_path, text), "csv")
    assert facts.records == 3
    assert len(facts.sha256) == 64


def test_the_scan_counts_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("audience.contact_files.reader.CHUNK_BYTES", 7)
    text = 'email,notes\n"a@example.com","x\ny"\n"b@example.com","p\n""q"""\n'
    assert scan(write(tmp_path, text), "csv").records == 2


def test_the_content_hash_changes_with_the_content(tmp_path: Path) -> None:
    first = scan(write(tmp_path, "email\na@example.com\n", "a.csv"), "csv").sha256
    same = scan(write(tmp_path, "email\na@example.com\n", "b.csv"), "csv").sha256
    other = scan(write(tmp_path, "email\nb@example.com\n", "c.csv"), "csv").sha256
    assert first == same != other


def test_a_file_that_is_not_utf8_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("email,name\na@example.com,Zoë\n".encode("latin-1"))
    with pytest.raises(FileError, match=r"not UTF-8 \(byte 0xeb at offset 27, line 2\)"):
        scan(path, "csv")


@pytest.mark.parametrize(
    ("name", "text", "fmt"),
    [
        ("contacts.jsonl", "", "jsonl"),
        ("contacts.NDJSON", "", "jsonl"),
        ("contacts.txt", '\n {"email": "a@example.com"}\n', "jsonl"),
        ("contacts.csv", "email\n", "csv"),
        ("export", "Email;Name\n", "csv"),
    ],
)
def test_format_detection(tmp_path: Path, name: str, text: str, fmt: str) -> None:
    assert detect_format(write(tmp_path, text, name)) == fmt


def test_json_lines_rows_with_line_numbers(tmp_path: Path) -> None:
    text = '{"email": "a@example.com"}\n\n{"email": "b@example.com"}\r\nnot json\n'
    path = write(tmp_path, text, "contacts.jsonl", bom=True)
    source = open_source(path, "jsonl")
    rows = [(row.line, row.raw) for row in source.rows()]
    source.close()
    assert rows == [
        (1, '{"email": "a@example.com"}'),
        (3, '{"email": "b@example.com"}'),
        (4, "not json"),
    ]
    assert scan(path, "jsonl").records == 4


def test_a_gzip_file_is_read_by_its_content_whatever_its_name(tmp_path: Path) -> None:
    text = "email,first_name\na@example.com,Ann\n"
    path = tmp_path / "contacts.csv"  # no .gz: gzip is recognised by its first bytes
    path.write_bytes(gzip.compress(text.encode()))
    assert detect_format(path) == "csv"
    assert scan(path, "csv").records == 1
    source = open_source(path, "csv")
    try:
        assert source.header == ["email", "first_name"]
        assert [row.raw for row in source.rows()] == [["a@example.com", "Ann"]]
    finally:
        source.close()
    jsonl = tmp_path / "contacts.data"
    jsonl.write_bytes(gzip.compress(b'{"email": "a@example.com"}\n'))
    assert detect_format(jsonl) == "jsonl"
