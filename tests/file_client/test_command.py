"""`audience import` as a user runs it: options, output streams and exit codes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from audience.cli import app
from tests.file_client.conftest import Live, write_csv

EXAMPLE = Path(__file__).parents[2] / "examples" / "contacts.csv"


@pytest.fixture(autouse=True)
def no_audience_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AUDIENCE_"):
            monkeypatch.delenv(name)


def audience(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, ["import", *map(str, args)], env=env)


def against(live: Live) -> tuple[str, ...]:
    return ("--workspace", live.tenant.id, "--url", live.url, "--key", live.tenant.key)


def test_the_example_file_imports_cleanly(live: Live, tmp_path: Path) -> None:
    example = tmp_path / "in" / EXAMPLE.name
    example.parent.mkdir()
    shutil.copyfile(EXAMPLE, example)
    result = audience(example, *against(live), "--map", "Signed Up=custom_datetime_1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("created 10 · updated 0 · failed 0 · skipped 0 · ")
    assert "not imported (no matching field): 'Company', 'Plan', 'Lifetime Value'" in result.stderr
    contact = live.get("marco.rossi@example.com")
    assert contact is not None
    assert contact["custom_datetime_1"] == "2024-01-15T08:30:00Z"
    assert [p.name for p in example.parent.iterdir()] == ["contacts.csv"]


def test_url_and_key_come_from_the_environment(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["Email"], [["a@example.com"]])
    env = {"AUDIENCE_URL": live.url, "AUDIENCE_API_KEY": live.tenant.key}
    result = audience(path, "-w", live.tenant.id, env=env)
    assert result.exit_code == 0, result.output
    assert live.count() == 1


def test_failed_rows_exit_1_and_name_the_errors_file(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["Email"], [["a@example.com"], ["nope"]])
    result = audience(path, *against(live))
    assert result.exit_code == 1
    assert result.stdout.startswith("created 1 · updated 0 · failed 1 · ")
    assert f"failed rows, with their reasons: {tmp_path / 'c.errors.csv'}" in result.stderr
    errors = tmp_path / "c.errors.csv"
    assert errors.read_text().splitlines()[1] == "3,nope,invalid email format,nope"


def test_explicit_errors_path(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["Email"], [["nope"]])
    result = audience(path, *against(live), "--errors", tmp_path / "out" / "bad.csv")
    assert result.exit_code == 1, result.output
    assert (tmp_path / "out" / "bad.csv").read_text().startswith("_line,_email,_error,Email")


def test_progress_goes_to_stderr_and_the_summary_to_stdout(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["Email"], [[f"u{i}@example.com"] for i in range(50)])
    result = audience(path, *against(live), "--batch-size", "7", "--concurrency", "3")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1
    assert live.count() == 50


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--map", "Email"), "--map 'Email': expected COLUMN=FIELD"),
        (("--map", "Email=mail"), "unknown field 'mail'"),
        (("--map", "Email=", "--dry-run"), "no column maps to email"),
    ],
)
def test_usage_errors_exit_2(
    live: Live, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    path = write_csv(tmp_path / "c.csv", ["Email"], [["a@example.com"]])
    result = audience(path, *against(live), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert live.count() == 0


def test_a_missing_key_exits_2(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["Email"], [["a@example.com"]])
    result = audience(path, "--workspace", "acme")
    assert result.exit_code == 2
    assert "error: no API key: pass --key or set AUDIENCE_API_KEY" in result.stderr


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = audience(tmp_path / "missing.csv", "--workspace", "acme", "--key", "k")
    assert result.exit_code == 2


def test_a_file_that_is_not_utf8_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("Email,Name\na@example.com,Zoë\n".encode("cp1252"))
    result = audience(path, "--workspace", "acme", "--key", "k")
    assert result.exit_code == 2
    assert "the file is not UTF-8" in result.stderr


def test_a_refused_key_exits_2(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["Email"], [["a@example.com"]])
    result = audience(path, "--workspace", live.tenant.id, "--url", live.url, "--key", "bad")
    assert result.exit_code == 2
    assert "error: the server refused the API key (401): invalid API key" in result.stderr
    assert "--resume" not in result.stderr


def test_a_dry_run_needs_no_key_and_sends_nothing(live: Live, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["Email", "Score"], [["a@example.com", "x"]])
    result = audience(path, "-w", "acme", "--map", "Score=custom_number_1", "--dry-run")
    assert result.exit_code == 1
    assert "  line 2: custom_number_1: expected a number, got 'x'" in result.stdout
    assert live.count() == 0


def test_a_url_that_is_not_http_exits_2_at_once(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["Email"], [["a@example.com"]])
    result = audience(path, "-w", "acme", "--key", "k", "--url", "localhost:8000")
    assert result.exit_code == 2
    assert "error: --url 'localhost:8000' must look like http://host:port" in result.stderr
