"""Figures computed from the measurements: rates, ratios per repeat and their medians."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bench.cases import IMPORT, Case, Load, Resync, Route
from bench.results import SetupResult


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def _ratios(top: Sequence[float], bottom: Sequence[float]) -> list[float]:
    """Per repeat: top[i] / bottom[i]."""
    return [t / b for t, b in zip(top, bottom, strict=False) if b]


@dataclass
class Row:
    """One case of a setup: rates per repeat, and the ratios the targets judge."""

    case: Case
    imports: list[float]
    floors: dict[Route, list[float]]
    #: import ÷ the fastest floor on the project's schema, per repeat.
    ratio: list[float]
    #: import ÷ the PK-only reference floor, per repeat.
    pk_ratio: list[float]
    #: Median time of one import request, in seconds.
    request: float


def floor_rates(result: SetupResult, case: Case) -> list[float]:
    """Per repeat, the fastest of the floors that count (project schema, not merge)."""
    per_route = [[r.rate for r in result.of(case, route)] for route in result.routes]
    counted = [
        rates for route, rates in zip(result.routes, per_route, strict=True) if route.is_floor
    ]
    return [max(rates) for rates in zip(*counted, strict=False)] if counted else []


def rows(result: SetupResult) -> list[Row]:
    """Every case measured, in the order it ran."""
    out = []
    for case in result.runs:
        imports = [r.rate for r in result.of(case, IMPORT)]
        floors = {
            route: [r.rate for r in result.of(case, route)]
            for route in result.routes
            if route.kind == "floor"
        }
        pk_only = next((rates for route, rates in floors.items() if route.pk_only), [])
        request = median([r.median_seconds for r in result.of(case, IMPORT)])
        ratio = _ratios(imports, floor_rates(result, case))
        out.append(Row(case, imports, floors, ratio, _ratios(imports, pk_only), request))
    return out


@dataclass
class ResyncRow:
    """One re-sync beside the update case it repeats."""

    resync: Resync
    rates: list[float]
    #: The import's update rate of the same case, per repeat (reference).
    update_import: list[float]
    #: The fastest floor's update rate of the same case, per repeat.
    update_floor: list[float]
    #: re-sync rate ÷ the fastest floor's update rate, per repeat.
    ratio: list[float]
    #: Median time of one re-sync request, in seconds.
    request: float


def resync_rows(result: SetupResult) -> list[ResyncRow]:
    """Every re-sync measured, in the order it ran."""
    out = []
    for resync, runs in result.resyncs.items():
        rates = [r.rate for r in runs]
        floor = floor_rates(result, resync.update)
        request = median([r.median_seconds for r in runs])
        imports = [r.rate for r in result.of(resync.update, IMPORT)]
        out.append(ResyncRow(resync, rates, imports, floor, _ratios(rates, floor), request))
    return out


def naive_ratio(result: SetupResult, case: Case) -> list[float]:
    """import (`case`) ÷ naive contacts.upsert, per repeat."""
    return _ratios([r.rate for r in result.of(case, IMPORT)], result.naive)


def linearity(result: SetupResult, dataset: str, large: int, small: int) -> list[float]:
    """Median time of one large create request ÷ that of one small one, per repeat."""
    big = result.of(Case(dataset, "create", large), IMPORT)
    little = result.of(Case(dataset, "create", small), IMPORT)
    return _ratios([r.median_seconds for r in big], [r.median_seconds for r in little])


@dataclass
class LoadRow:
    """One concurrent load beside the single-client figures of the same case."""

    load: Load
    rates: list[float]
    wall: float
    contacts: int
    failures: int
    single_import: list[float]
    single_floor: list[float]
    #: aggregate rate ÷ the single-client floor, per repeat.
    ratio: list[float]


def load_rows(result: SetupResult) -> list[LoadRow]:
    out = []
    for load, runs in result.loads.items():
        rates = [r.rate for r in runs]
        floor = floor_rates(result, load.single)
        out.append(
            LoadRow(
                load,
                rates,
                median([r.wall for r in runs]),
                runs[0].contacts,
                sum(r.failures for r in runs),
                [r.rate for r in result.of(load.single, IMPORT)],
                floor,
                _ratios(rates, floor),
            )
        )
    return out
