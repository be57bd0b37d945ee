"""Shared bits of benchmark reports: the machine, the date, JSON and Markdown files in `benchmarks/`."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path

from lookalike.atomic import atomic_write_text


def machine() -> dict:
    """CPU model and count, GPU (if any), OS and library versions, for the record."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "gpu": gpu or "none",
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def machine_line(m: dict) -> str:
    return f"{m['cpu']} ({m['cpu_cores']} cores), GPU: {m['gpu']}; {m['os']}; Python {m['python']}"


def write_report(out_dir: Path, stem: str, data: dict, markdown: str) -> tuple[Path, Path]:
    """Write `out_dir/stem.json` and `out_dir/stem.md` atomically; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    atomic_write_text(js, json.dumps(data, indent=2, default=str) + "\n")
    atomic_write_text(md, markdown)
    return js, md


def pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}"


def closing_lines(out: dict) -> list[str]:
    """The end of a pair benchmark's Markdown: what `--rerank metric` rows are, and the skipped heads."""
    lines: list[str] = []
    reranked = [r for r in out["results"] if "rerank" in r]
    if reranked:
        from lookalike.eval.metric_pairs import rerank_note

        lines += ["", *rerank_note(reranked)]
    if out["skipped"]:
        lines += ["", "Skipped heads:", ""]
        lines += [f"- `{s['head']}`: {s['reason']}" for s in out["skipped"]]
    return lines
