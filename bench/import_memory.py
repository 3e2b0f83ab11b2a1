"""Peak memory of `audience import` on a large CSV: `python -m bench.import_memory`.

The command must stream: importing 200,000 rows should need about the memory of importing
20,000. This script generates both files (realistic columns, some quoted multi-line cells),
imports each with the real command in a child process against a real server, and reports
each child's peak RSS (from wait4) and their ratio, the baseline being the small file of the
same run. It starts `audience serve` on a temporary SQLite database unless --url and --key
point at a running server. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from audience.kit.server_process import ServerProcess, run_cli

#: The `audience` command of this interpreter.
AUDIENCE = (sys.executable, "-c", "from audience.cli import main; main()")
#: Peak RSS of the large import over the small one's above which memory is not bounded.
MAX_RATIO = 1.5
HEADER = [
    "Email",
    "First Name",
    "Last Name",
    "Phone",
    "Job Title",
    "Country",
    "Postcode",
    "Address",
    "Time Zone",
    "Score",
    "Signed Up",
    "Prefs",
    "Notes",
]
MAPPING = ("Score=custom_number_1", "Signed Up=custom_datetime_1", "Prefs=custom_json_1")
COUNTRIES = ("US", "FR", "DE", "IT", "GB", "JP", "BR", "IN")
ZONES = ("America/New_York", "Europe/Paris", "Europe/Berlin", "Asia/Tokyo", "UTC")


@dataclass(frozen=True)
class Measure:
    rows: int
    megabytes: float
    seconds: float
    peak_rss_mib: float
    exit_code: int
    summary: str


def write_csv(path: Path, rows: int, prefix: str) -> None:
    """A CSV of `rows` contacts, written row by row."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i in range(rows):
            writer.writerow(_row(i, prefix))


def _row(i: int, prefix: str) -> list[str]:
    address = f"{i} Market Street\nSuite {i % 400}" if i % 5 == 0 else f"{i} Main St"
    return [
        f"{prefix}.{i}@example.com",
        f"First{i}",
        f"Last{i % 9973}",
        f"+1555{i:07d}",
        "Marketing Manager" if i % 2 else "Engineer, Platform",
        COUNTRIES[i % len(COUNTRIES)],
        f"{10000 + i % 89999}",
        address,
        ZONES[i % len(ZONES)],
        str(i % 1000),
        f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
        json.dumps({"plan": "pro" if i % 3 else "free", "seats": i % 50}),
        f"imported by the memory benchmark, row {i}",
    ]


def import_file(path: Path, rows: int, url: str, key: str, workspace: str) -> Measure:
    """Run `audience import` in a child process; its wall time and peak RSS."""
    command = [
        *AUDIENCE,
        "import",
        str(path),
        "--workspace",
        workspace,
        "--url",
        url,
        "--key",
        key,
        *(arg for spec in MAPPING for arg in ("--map", spec)),
    ]
    started = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert child.stdout is not None
    summary = child.stdout.read().decode().strip()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    return Measure(
        rows=rows,
        megabytes=path.stat().st_size / 1e6,
        seconds=seconds,
        peak_rss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
        exit_code=child.returncode,
        summary=summary,
    )


# --- a server of our own, when none is given ----------------------------------------------------


class LocalServer:
    """`audience serve` on a temporary SQLite database, with a workspace and a key."""

    workspace = "bench"
    secret_key = "import-memory-bench-secret-key-not-for-production"

    def __init__(self, directory: Path) -> None:
        database_url = f"sqlite:///{directory / 'bench.db'}"
        secret = self.secret_key
        run_cli(database_url, "db", "upgrade", secret_key=secret)
        run_cli(
            database_url,
            "workspace",
            "create",
            self.workspace,
            "--name",
            "Bench",
            secret_key=secret,
        )
        out = run_cli(database_url, "key", "create", self.workspace, secret_key=secret).stdout
        self.key = out.strip().splitlines()[-1]
        self.server = ServerProcess(
            database_url, directory / "server.log", workers=1, secret_key=secret
        )
        self.server.start()
        self.url = self.server.base_url

    def stop(self) -> None:
        self.server.stop()


# --- main ---------------------------------------------------------------------------------------


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.import_memory", description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the large file")
    parser.add_argument("--baseline-rows", type=int, default=20_000, help="rows of the small one")
    parser.add_argument("--url", help="a running server (default: start one on SQLite)")
    parser.add_argument("--key", help="an API key of --workspace on that server")
    parser.add_argument("--workspace", default="bench")
    return parser.parse_args()


def _line(label: str, m: Measure) -> str:
    rate = m.rows / m.seconds if m.seconds else 0.0
    return (
        f"{label:<9} {m.rows:>9,} rows {m.megabytes:>7.1f} MB {m.seconds:>7.1f} s "
        f"{rate:>8,.0f} rows/s  peak RSS {m.peak_rss_mib:>6.1f} MiB  exit {m.exit_code}"
    )


def main() -> int:
    args = _arguments()
    if bool(args.url) != bool(args.key):
        print("give both --url and --key, or neither", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="audience-import-memory-") as tmp:
        directory = Path(tmp)
        server = None if args.url else LocalServer(directory)
        if server is None:
            url, key, workspace = str(args.url), str(args.key), str(args.workspace)
        else:
            url, key, workspace = server.url, server.key, server.workspace
        run_id = str(int(time.time()))
        try:
            small, large = directory / "small.csv", directory / "large.csv"
            write_csv(small, args.baseline_rows, f"small{run_id}")
            write_csv(large, args.rows, f"large{run_id}")
            baseline = import_file(small, args.baseline_rows, url, key, workspace)
            measure = import_file(large, args.rows, url, key, workspace)
        finally:
            if server is not None:
                server.stop()
    print(_line("baseline", baseline))
    print(_line("large", measure))
    ratio = measure.peak_rss_mib / baseline.peak_rss_mib
    bounded = ratio <= MAX_RATIO and measure.exit_code == 0 and baseline.exit_code == 0
    print(f"summary   {measure.summary}")
    print(
        f"peak RSS ratio large/baseline: {ratio:.2f} for {measure.rows / baseline.rows:.0f}x "
        f"the rows ({'bounded' if bounded else 'NOT bounded'}, limit {MAX_RATIO})"
    )
    return 0 if bounded else 1


if __name__ == "__main__":
    sys.exit(main())
