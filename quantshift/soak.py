"""Promotion rules by risk class: which stages a release must have passed, and for how long (soak).

low: paper 1 d -> production; medium: paper 3 d -> shadow 7 d -> production;
high: paper 7 d -> shadow 14 d -> canary 3 d -> production. Measured from the audit log: a stage is
passed when the release was deployed there successfully and nothing failed for it there since; its
soak runs from that deploy to now.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from quantshift.audit import Record

STAGES = ("paper", "shadow", "canary", "production")
DAY = 86_400.0
PATHS: dict[str, tuple[tuple[str, float], ...]] = {
    "low": (("paper", 1 * DAY),),
    "medium": (("paper", 3 * DAY), ("shadow", 7 * DAY)),
    "high": (("paper", 7 * DAY), ("shadow", 14 * DAY), ("canary", 3 * DAY)),
}


@dataclass(frozen=True)
class Requirement:
    stage: str
    needed: float
    soaked: float | None  # None: never passed

    @property
    def met(self) -> bool:
        return self.soaked is not None and self.soaked >= self.needed


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    requirements: tuple[Requirement, ...]
    reason: str


def passed_since(records: list[Record], release: str, stage: str) -> float | None:
    """When the release last started a clean run in `stage` (a successful deploy with no failure after it)."""
    start: float | None = None
    for r in sorted(records, key=lambda r: r.when):
        if r.release != release or r.stage != stage:
            continue
        if r.kind in ("deploy", "promotion") and r.outcome == "ok":
            start = start if start is not None else r.when
        elif r.outcome == "failed" or r.kind == "rollback":
            start = None
    return start


def check(records: list[Record], release: str, risk: str, target: str, now: float, durations: dict[str, float] | None = None) -> Verdict:
    """May `release` (of risk class `risk`) be promoted to `target` at `now`?"""
    if risk not in PATHS:
        raise ValueError(f"risk class must be one of {', '.join(PATHS)}, got {risk!r}")
    if target not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {target!r}")
    order = STAGES.index(target)
    reqs = []
    for stage, needed in PATHS[risk]:
        if STAGES.index(stage) >= order:
            continue
        needed = (durations or {}).get(f"{risk}.{stage}", needed)
        since = passed_since(records, release, stage)
        reqs.append(Requirement(stage, needed, None if since is None else now - since))
    missing = [r for r in reqs if not r.met]
    if not missing:
        return Verdict(
            True,
            tuple(reqs),
            f"{release} ({risk}) has passed {', '.join(f'{r.stage} {_d(r.soaked or 0)}' for r in reqs) or 'no stage needed'}",
        )
    parts = [f"{r.stage}: never passed" if r.soaked is None else f"{r.stage}: soaked {_d(r.soaked)} of {_d(r.needed)}" for r in missing]
    return Verdict(False, tuple(reqs), f"{release} ({risk}) may not go to {target} yet: " + "; ".join(parts))


def _d(seconds: float) -> str:
    return f"{seconds / DAY:.1f} d" if seconds >= DAY else str(dt.timedelta(seconds=int(seconds)))
