"""When two faces are "likely the same person": a cosine threshold per head and detector, measured.

The thresholds live in `calibration.json` beside this module, written by `benchmarks/verify.py` from every
pair of LFW View 2's photos (~29.6 million different-person pairs): for each (head, detector) and each false
match rate in `FMRS` (1e-2, 1e-3, 1e-4), the cosine at which at most that share of different-person pairs score
at or above it, and the share of same-person pairs that do (the true match rate). `lookalike verify` decides
with one of them and a query marks each match at or above it as likely the same person, saying which rates back
the mark. A head or detector without a measurement gets no mark (never a guessed threshold).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
#: The false match rates measured, and the one used unless asked otherwise.
FMRS = (1e-2, 1e-3, 1e-4)
DEFAULT_FMR = 1e-3


def fmr_key(fmr: float) -> str:
    """How a false match rate is written in the table and on the command line: "0.01", "0.001", "0.0001"."""
    return f"{fmr:g}"


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


def same_person(head: str, detector: str, fmr: float = DEFAULT_FMR) -> SamePerson | None:
    """The measured "same person" operating point of `head` with `detector` at false match rate `fmr` (one of
    `FMRS`), or None when not measured."""
    row = _table().get("points", {}).get(f"{head}|{detector}", {}).get(fmr_key(fmr))
    if not row:
        return None
    return SamePerson(float(row["threshold"]), float(row["fmr"]), float(row["tmr"]), str(_table().get("source", "")))


def threshold_for(head: str, detector: str, fmr: float = DEFAULT_FMR) -> SamePerson:
    """The measured point of `head` with `detector` at `fmr`; a one-line error when it was not measured."""
    from lookalike.errors import LookalikeError

    point = same_person(head, detector, fmr)
    if point is None:
        raise LookalikeError(
            f"no measured same-person threshold for head {head!r} with detector {detector!r} at false match rate "
            f"{fmr_key(fmr)} (benchmarks/verify.md lists the measured ones): give one with --threshold"
        )
    return point
