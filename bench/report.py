"""The console tables and the Markdown report; every judged figure beside its target."""

from __future__ import annotations

from collections.abc import Sequence

from bench import machine, targets
from bench.cases import Case, Route, size
from bench.datasets import SHAPES
from bench.options import HEADLINE, Options
from bench.results import SetupResult
from bench.summary import (
    LoadRow,
    ResyncRow,
    Row,
    linearity,
    load_rows,
    median,
    naive_ratio,
    resync_rows,
    rows,
)


def _spread(values: Sequence[float]) -> str:
    return f" ({min(values):,.0f} to {max(values):,.0f})" if len(values) > 1 else ""


def _floor_name(route: Route) -> str:
    return route.label.removeprefix("floor ")


def _column(route: Route) -> str:
    return f"PK-only floor ({route.variant})" if route.pk_only else f"floor ({route.variant})"


def _floors(result: SetupResult) -> list[Route]:
    return [route for route in result.routes if route.kind == "floor"]


def _floor_label(result: SetupResult) -> str:
    counted = [route.variant for route in result.routes if route.is_floor]
    return f" (fastest of {', '.join(counted)})" if len(counted) > 1 else ""


def _judged(ratio: float) -> tuple[str, str]:
    return f"{ratio:.2f} {targets.FLOOR.mark(ratio)}", targets.FLOOR_REAL.mark(ratio)


def headline(result: SetupResult, options: Options) -> list[str]:
    """Naive, memory and linearity figures of a setup, each with its target."""
    lines = []
    big = Case(HEADLINE, "create", options.large)
    if result.naive:
        ratio = median(naive_ratio(result, big))
        judged = targets.NAIVE.judged(ratio)
        if result.setup.backend != "postgres":
            judged = f"(the target {targets.NAIVE.text} is PostgreSQL's)"
        lines.append(
            f"naive contacts.upsert: {median(result.naive):,.0f} contacts/s; "
            f"import ÷ naive ({big.label}) = {ratio:,.1f} {judged}"
        )
    peaks = [
        f"{name} {kib / 1024:,.0f} MB {targets.RSS_MB.judged(kib / 1024)}"
        for name, kib in result.peak_rss_kib.items()
    ]
    if peaks:
        lines.append(
            "worker peak RSS (VmHWM), one request at a time: "
            + "; ".join(peaks)
            + f"; idle {result.idle_rss_kib / 1024:,.0f} MB"
        )
    if result.load_rss_kib:
        lines.append(
            f"worker peak RSS under the concurrent loads: {result.load_rss_kib / 1024:,.0f} MB "
            "(no target: a worker then holds several large requests at once)"
        )
    if len(options.batch_sizes) > 1:
        small = options.batch_sizes[-1]
        for dataset in options.datasets:
            lin = linearity(result, dataset, options.large, small)
            if lin:
                lines.append(
                    f"linearity ({dataset}): one {size(options.large)} request ÷ one "
                    f"{size(small)} request = {median(lin):.2f} "
                    f"{targets.LINEARITY.judged(median(lin))}"
                )
    return lines


def _resync_line(row: ResyncRow) -> str:
    ratio = median(row.ratio)
    return (
        f"{row.resync.label} (the update bodies again, unchanged): {median(row.rates):,.0f} "
        f"contacts/s (median {row.request * 1000:,.0f} ms a request); update: import "
        f"{median(row.update_import):,.0f}, floor {median(row.update_floor):,.0f}; "
        f"re-sync ÷ floor update = {ratio:.2f} {targets.RESYNC.judged(ratio)}"
    )


def _load_line(row: LoadRow) -> str:
    return (
        f"{row.load.label}: {row.contacts:,} contacts in {row.wall:.2f} s = "
        f"{median(row.rates):,.0f} contacts/s; one client: import "
        f"{median(row.single_import):,.0f}, floor {median(row.single_floor):,.0f}; "
        f"aggregate ÷ floor {median(row.ratio):.2f}; non-200 answers {row.failures} "
        f"{targets.FAILURES.judged(row.failures)}"
    )


def console(result: SetupResult, options: Options) -> str:
    floors = _floors(result)
    head = f"{'case':<30} {'import/s':>9} " + " ".join(f"{_floor_name(r):>18}" for r in floors)
    head += f"  {'÷floor ' + targets.FLOOR.text:>12} {targets.FLOOR_REAL.text:>5}"
    head += "  ÷PK-only" if any(r.pk_only for r in floors) else ""
    lines = [
        f"{result.setup.label} — {result.version}: {options.contacts:,} contacts a dataset, "
        f"median of {options.repeats}",
        head,
    ]
    for row in rows(result):
        rates = " ".join(f"{median(row.floors.get(r, [])):>18,.0f}" for r in floors)
        ratio, real = _judged(median(row.ratio))
        pk = f"  {median(row.pk_ratio):>8.2f}" if row.pk_ratio else ""
        lines.append(
            f"{row.case.label:<30} {median(row.imports):>9,.0f} {rates}  {ratio:>12} {real:>5}{pk}"
        )
    lines += [_resync_line(row) for row in resync_rows(result)]
    lines += headline(result, options)
    lines += [_load_line(row) for row in load_rows(result)]
    return "\n".join(lines)


def _table(result: SetupResult) -> list[str]:
    floors = _floors(result)
    pk = any(r.pk_only for r in floors)
    out = [
        "| case | import | "
        + " | ".join(_column(r) for r in floors)
        + f" | import ÷ floor{_floor_label(result)} (target {targets.FLOOR.text}) "
        + f"| real target {targets.FLOOR_REAL.text} |"
        + (" import ÷ PK-only floor (reference) |" if pk else ""),
        "|---|---:|" + "---:|" * len(floors) + "---:|:---:|" + ("---:|" if pk else ""),
    ]
    for row in rows(result):
        out.append(_table_row(row, floors, pk))
    return out


def _table_row(row: Row, floors: Sequence[Route], pk: bool) -> str:
    rates = " | ".join(
        f"{median(row.floors.get(r, [])):,.0f}{_spread(row.floors.get(r, []))}" for r in floors
    )
    ratio, real = _judged(median(row.ratio))
    tail = f" {median(row.pk_ratio):.2f} |" if pk else ""
    return (
        f"| {row.case.label} | {median(row.imports):,.0f}{_spread(row.imports)} | {rates} "
        f"| {ratio} | {real} |{tail}"
    )


def _resyncs(result: SetupResult) -> list[str]:
    resync = resync_rows(result)
    if not resync:
        return []
    out = [
        "",
        "| re-sync (the update bodies again, unchanged) | re-sync | update: import "
        f"| update: floor{_floor_label(result)} "
        f"| re-sync ÷ floor update (target {targets.RESYNC.text}) |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in resync:
        ratio = median(row.ratio)
        out.append(
            f"| {row.resync.label} | {median(row.rates):,.0f}{_spread(row.rates)} "
            f"| {median(row.update_import):,.0f} | {median(row.update_floor):,.0f} "
            f"| {ratio:.2f} {targets.RESYNC.mark(ratio)} |"
        )
    return out


def _loads(result: SetupResult) -> list[str]:
    load = load_rows(result)
    if not load:
        return []
    out = [
        "",
        "| concurrent load | contacts | wall | contacts/s (all clients) | one client: import "
        f"| one client: floor | ÷ floor | non-200 (target {targets.FAILURES.text}) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in load:
        out.append(
            f"| {row.load.label} | {row.contacts:,} | {row.wall:.2f} s "
            f"| {median(row.rates):,.0f}{_spread(row.rates)} | {median(row.single_import):,.0f} "
            f"| {median(row.single_floor):,.0f} | {median(row.ratio):.2f} "
            f"| {row.failures} {targets.FAILURES.mark(row.failures)} |"
        )
    return out


def _section(result: SetupResult, options: Options) -> list[str]:
    out = [f"## {result.setup.label} — {result.version}", "", *_table(result)]
    out += [*_resyncs(result), *_loads(result), ""]
    out += [f"- {line}" for line in headline(result, options)]
    timings = [f"{row.case.label}: {row.request * 1000:,.0f} ms" for row in rows(result)]
    timings += [f"{row.resync.label}: {row.request * 1000:,.0f} ms" for row in resync_rows(result)]
    out.append("- median time of one import request: " + "; ".join(timings))
    out += [f"- {note}" for note in result.notes]
    out.append(f"- wall time of this setup: {result.seconds:,.0f} s")
    if result.problems:
        out += ["", "Problems seen:", ""] + [f"- {p}" for p in result.problems[:30]]
    return [*out, ""]


def markdown(results: Sequence[SetupResult], options: Options, source: str, when: str) -> str:
    out = [
        "# Import benchmark results",
        "",
        f"Written by `{options.command}` on {when}. Rates are contacts per second, the median "
        f"of {options.repeats} repeat(s) (lowest to highest in brackets); ratios are the median "
        "of the per-repeat ratios. bench/README.md says what each figure means.",
        "",
        "## Machine",
        "",
        f"- {machine.summary()}",
        f"- {machine.python_version()}; " + "; ".join(dict.fromkeys(r.version for r in results)),
        f"- source: {source}",
        f"- {options.contacts:,} contacts a dataset (seed {options.seed}), server with "
        f"{options.workers} workers, one request (or floor transaction) at a time except in "
        "the concurrent loads",
        *(f"- dataset `{name}`: {SHAPES[name].summary}" for name in options.datasets),
        "",
    ]
    for result in results:
        out += _section(result, options)
    return "\n".join(out)
