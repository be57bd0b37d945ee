"""What every command module shares: click's context settings and progress on stderr."""

from __future__ import annotations

import sys
import time

import click

#: Context settings of every command: `-h` too, and wide help.
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


class LogLines:
    """Progress as plain lines on stderr, at most one every `every` seconds and one at the end: what a log file
    gets instead of a bar (tqdm redraws with carriage returns, which pile up in a file or a CI log)."""

    def __init__(self, total: int | None, desc: str, unit: str, every: float = 15.0) -> None:
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.n = 0
        self.t0 = self.last = time.monotonic()
        self.postfix: dict = {}

    def set_postfix(self, refresh: bool = False, **kw: object) -> None:
        self.postfix = kw

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._line()

    def _line(self) -> None:
        secs = time.monotonic() - self.t0
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        done = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        print(f"{self.desc}: {done} {self.unit}s in {secs:.0f}s{extra}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.n:
            self._line()


def make_bar(total: int | None, desc: str, unit: str, disabled: bool = False):
    """A tqdm bar on a terminal, `LogLines` when stderr goes elsewhere, a silent tqdm when disabled.

    Returns an object with `update(n)`, `set_postfix(...)` and `close()`.
    """
    if not disabled and not sys.stderr.isatty():
        return LogLines(total, desc, unit)
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, disable=disabled, file=sys.stderr)


class ProgressBar:
    """Progress on stderr fed by a run's `Progress` calls (`start`, `advance`): files, faces, faces/s."""

    def __init__(self, desc: str, unit: str = "photo", disabled: bool = False) -> None:
        self.desc, self.unit, self.disabled = desc, unit, disabled
        self.bar = None
        self.faces = 0
        self.t0 = time.monotonic()

    def start(self, total_files: int) -> None:
        self.t0 = time.monotonic()
        self.bar = make_bar(total_files, self.desc, self.unit, self.disabled)

    def advance(self, files: int, faces: int) -> None:
        self.faces += faces
        if self.bar is not None:
            rate = self.faces / max(time.monotonic() - self.t0, 1e-9)
            self.bar.set_postfix(faces=self.faces, faces_s=f"{rate:.1f}", refresh=False)
            self.bar.update(files)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Cosine(click.ParamType):
    """A cosine option: a finite number in [-1, 1] (click's FloatRange lets `nan` through)."""

    name = "cosine"

    def convert(self, value, param, ctx):
        from lookalike.errors import LookalikeError
        from lookalike.search.asking import check_threshold

        if isinstance(value, float):
            value = repr(value)
        try:
            return check_threshold(value, f"--{param.name}" if param is not None else "threshold")
        except LookalikeError as e:
            self.fail(str(e), param, ctx)


COSINE = _Cosine()


class _Detector(click.ParamType):
    """A detector name, checked against the detector registry when given (the registry's module loads OpenCV, so
    it is read only then, not when the CLI starts)."""

    name = "detector"

    def get_metavar(self, param, ctx=None) -> str:
        from lookalike.faces.detect import DETECTORS

        return "[" + "|".join(DETECTORS.names()) + "]"

    def convert(self, value, param, ctx):
        from lookalike.errors import LookalikeError
        from lookalike.faces.detect import detector_spec

        try:
            return detector_spec(str(value)).name
        except LookalikeError as e:
            self.fail(str(e), param, ctx)


DETECTOR = _Detector()


def emit_json(obj) -> None:
    """One JSON line on stdout (what `--json` prints)."""
    import json

    click.echo(json.dumps(obj, default=str))
