"""When two faces are "likely the same person": a cosine threshold per head and detector, measured.

The thresholds live in `calibration.json` beside this module, written by `benchmarks/thresholds.py` from LFW
View 2 (6,000 pairs, 3,000 of two different people): for each (head, detector), the cosine at which at most
`fmr` of the different-person pairs score at or above it (the false match rate), and the share of same-person
pairs that do (the true match rate). A query marks each match at or above the threshold as likely the same
person and says which rate backs the mark. A head or detector without a measurement gets no mark (never a
guessed threshold).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")


@dataclass(frozen=True)
class SamePerson:
    """A measured operating point: matches with cosine >= `threshold` are likely the same person."""

    threshold: float
    fmr: float  # measured false match rate at the threshold
    tmr: float  # measured true match rate at the threshold
    source: str  # what it was measured on

    def as_json(self) -> dict:
        return {"threshold": self.threshold, "fmr": self.fmr, "tmr": self.tmr, "source": self.source}


@cache
def _table() -> dict:
    try:
        return json.loads(CALIBRATION_FILE.read_text())
    except (OSError, ValueError):
        return {}


def same_person(head: str, detector: str) -> SamePerson | None:
    """The measured "same person" operating point of `head` with `detector`, or None when not measured."""
    row = _table().get("points", {}).get(f"{head}|{detector}")
    if not row:
        return None
    return SamePerson(float(row["threshold"]), float(row["fmr"]), float(row["tmr"]), str(_table().get("source", "")))
