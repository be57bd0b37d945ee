"""Face-swap candidates for anonymisation (seed 004, section 3.3).

The pool's faces carry attributes (gender: male/female, age: young/older); 8 groups are the 4 single
attributes and their 4 intersections. The query's distance to a group is the upper end of the 95%
confidence interval of its distances to the group's faces (mean + t * sd / sqrt(n)); the group with the
smallest such distance is the query's, and its least similar faces are the candidates.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.errors import LookalikeError

GROUPS = {
    "male": ("male", None),
    "female": ("female", None),
    "young": (None, "young"),
    "older": (None, "older"),
    "young&male": ("male", "young"),
    "young&female": ("female", "young"),
    "older&male": ("male", "older"),
    "older&female": ("female", "older"),
}


def read_attributes(path: Path) -> dict[str, tuple[str, str]]:
    """CSV with `path` (or `identity`), `gender` (male/female), `age` (young/older) -> key -> (gender, age)."""
    out = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            key = row.get("path") or row.get("identity")
            g, a = (row.get("gender") or "").strip().lower(), (row.get("age") or "").strip().lower()
            if not key or g not in ("male", "female") or a not in ("young", "older"):
                raise LookalikeError(f"{path}: each row needs path|identity, gender male|female, age young|older")
            out[key] = (g, a)
    return out


def upper_ci(d: np.ndarray) -> float:
    """Upper end of the 95% confidence interval of the mean of `d` (Student t; a single value is itself)."""
    from scipy import stats

    if len(d) < 2:
        return float(d.mean()) if len(d) else float("inf")
    return float(d.mean() + stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))


@dataclass
class Candidates:
    """The chosen group, every group's CI distance, and the least similar faces of the group (index rows)."""

    group: str
    group_distance: dict[str, float]
    rows: list[int]
    distances: list[float]


def choose(query: np.ndarray, pool: np.ndarray, attrs: list[tuple[str, str] | None], k: int = 10) -> Candidates:
    """query `(d,)`, pool `(N, d)` L2-normalised, attrs per pool row (None: unlabelled, left out).

    Distance is 1 - cosine.
    """
    d = 1.0 - pool @ query
    gd = {}
    members = {}
    for name, (g, a) in GROUPS.items():
        rows = [i for i, at in enumerate(attrs) if at and (g is None or at[0] == g) and (a is None or at[1] == a)]
        members[name] = rows
        gd[name] = round(upper_ci(d[rows]), 6) if rows else float("inf")
    best = min(gd, key=gd.get)
    if not members[best]:
        raise LookalikeError("no pool face has attributes: check the attributes file's paths or identities")
    rows = sorted(members[best], key=lambda i: -d[i])[:k]
    return Candidates(best, gd, rows, [round(float(d[i]), 6) for i in rows])
