"""The targets of issue 4, each printed beside its figure with ✓ or ✗."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """A bound a figure must reach (`at_least`) or stay under."""

    bound: float
    at_least: bool

    def met(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value >= self.bound if self.at_least else value <= self.bound

    @property
    def text(self) -> str:
        if self.bound == 0 and not self.at_least:
            return "= 0"
        return f"{'≥' if self.at_least else '≤'} {self.bound:g}"

    def mark(self, value: float) -> str:
        return "✓" if self.met(value) else "✗"

    def judged(self, value: float) -> str:
        """`(target ≥ 0.6) ✓`: the target and whether `value` meets it."""
        return f"(target {self.text}) {self.mark(value)}"


#: import ÷ floor on the project's schema: the issue's acceptance line...
FLOOR = Target(0.6, at_least=True)
#: ...and the real target.
FLOOR_REAL = Target(0.8, at_least=True)
#: import (create, large batches) ÷ naive contacts.upsert, on PostgreSQL.
NAIVE = Target(20.0, at_least=True)
#: Peak RSS of a worker serving large requests one at a time, in MB.
RSS_MB = Target(150.0, at_least=False)
#: Time of one large request ÷ time of one small request.
LINEARITY = Target(11.0, at_least=False)
#: Re-sync (the update bodies sent again, unchanged) ÷ the floor's update rate, same case.
RESYNC = Target(3.0, at_least=True)
#: Answers other than 200 under concurrent load.
FAILURES = Target(0.0, at_least=False)
