"""What a question may ask, checked once for the CLI, the server and the library: how many matches, which mode,
which false match rate, which threshold, which photos. Each check returns the value as its type or raises a
one-line LookalikeError naming the field."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from lookalike.errors import LookalikeError
from lookalike.heads.calibration import FMRS

if TYPE_CHECKING:
    from lookalike.faces.analyzer import FaceFailure

#: The most matches one question may ask for (a page of answers, not a dump of the index).
MAX_K = 1000
MODES = ("faces", "identities")


def check_k(value: object, field: str = "k") -> int:
    """A whole number of matches in 1..MAX_K (a JSON `10`, a form's `"10"`)."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise LookalikeError(f"{field} must be a whole number from 1 to {MAX_K}, not {value!r}")
    try:
        k = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise LookalikeError(f"{field} must be a whole number from 1 to {MAX_K}, not {value!r}") from None
    if not 1 <= k <= MAX_K:
        raise LookalikeError(f"{field} must be a whole number from 1 to {MAX_K}, not {k}")
    return k


def check_face(value: object) -> int:
    """A face number of a photo (0 = its main face)."""
    if isinstance(value, bool) or not str(value).isdigit():
        raise LookalikeError(f"face must be a face number (0 = the main face), not {value!r}")
    return int(value)


def check_mode(value: object) -> str:
    if value not in MODES:
        raise LookalikeError(f"mode must be {' or '.join(MODES)}, not {value!r}")
    return str(value)


def check_fmr(value: object) -> float:
    """One of the false match rates thresholds are measured at (`heads.calibration.FMRS`)."""
    try:
        fmr = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        fmr = math.nan
    for known in FMRS:
        if math.isclose(fmr, known, rel_tol=1e-9):
            return known
    raise LookalikeError(f"fmr must be one of {', '.join(f'{f:g}' for f in FMRS)}, not {value!r}")


def check_threshold(value: object, field: str = "threshold") -> float | None:
    """A cosine to decide at: a finite number in [-1, 1], or None (the measured threshold)."""
    if value is None or value == "":
        return None
    try:
        t = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        t = math.nan
    if not (math.isfinite(t) and -1.0 <= t <= 1.0):
        raise LookalikeError(f"{field} must be a cosine between -1 and 1, not {value!r}")
    return t


def check_paths(value: object) -> list[str]:
    """A list of photo paths (a lone string is a mistake, not one path per character)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise LookalikeError("paths must be a list of photo paths (strings)")
    return value


def failure_words(failure: FaceFailure, name: str) -> str:
    """One line for a photo asked about that has no face to use (the query's, verify's and the server's words)."""
    from lookalike.faces.analyzer import FaceFailure

    if failure.kind == FaceFailure.NO_FACE:
        return f"no face found in {name}"
    if failure.kind == FaceFailure.NO_SUCH_FACE:
        n = failure.faces
        return f"--face {failure.asked}: {name} has {n} face(s), numbered 0..{n - 1} (see --list-faces)"
    return f"cannot use {name}: {failure}"
