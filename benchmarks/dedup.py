"""Dedup benchmark: planted copies of nine edit kinds among LFW photos, and every same-person pair of distinct LFW
photos as negatives; writes benchmarks/dedup.md. Nothing is written into the repository but the page.

    python benchmarks/dedup.py [--people N] [--per-kind 25] [--work DIR]

The set (benchmarks/dedup_set.py) is indexed by the installed `lookalike index` with the folder default head, then
`lookalike dedup INDEX --json` is timed as a whole process. A planted copy is found when it lands in its original's
copy group; a negative is two distinct LFW files of one person reported as copies of each other.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.dedup_set import KINDS, build  # noqa: E402


def cpu_flags() -> str:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=None, help="LFW people with >= 2 photos to use [all]")
    ap.add_argument("--per-kind", type=int, default=25)
    ap.add_argument("--head", default="sface")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "dedup.md")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="dedup-bench-"))
    photos, index = work / "photos", work / "index"
    meta = build(photos, args.people, args.per_kind)
    lk = [sys.executable, "-m", "lookalike"]
    env = {**os.environ, "LOOKALIKE_INDEX_HOME": str(work / "home")}
    t0 = time.perf_counter()
    subprocess.run([*lk, "index", str(photos), "--out", str(index), "--head", args.head, "-q"], check=True, env=env)
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = subprocess.run([*lk, "dedup", str(index), "--json", "-q"], check=True, env=env, capture_output=True, text=True)
    t_dedup = time.perf_counter() - t0
    out = json.loads(r.stdout)
    group_of = {}
    for g in out["groups"]:
        for p in [g["keep"]] + [c["path"] for c in g["copies"]]:
            group_of[p] = g["keep"]
    found, total = Counter(), Counter()
    for a, b, kind in meta["copies"]:
        total[kind] += 1
        found[kind] += group_of.get(a, a + "\0") == group_of.get(b, b + "\1")
    copies = {frozenset(p) for p in out["exact"]} | {frozenset((p["a"], p["b"])) for p in out["copies"]}
    planted = {frozenset((a, b)) for a, b, _ in meta["copies"]}
    originals: dict[str, list[str]] = {}
    for f in sorted(photos.glob("*/*")):
        if not f.name.startswith("copy-"):
            originals.setdefault(f.parent.name, []).append(str(f))
    negatives = sum(len(v) * (len(v) - 1) // 2 for v in originals.values())
    false = sorted(
        tuple(sorted(p)) for p in copies
        if p not in planted and all(not Path(x).name.startswith("copy-") for x in p)
    )  # fmt: skip
    wrong_group = sorted(
        tuple(sorted(p)) for p in copies
        if p not in planted and any(Path(x).name.startswith("copy-") for x in p)
        and len({Path(x).name.replace("copy-", "").split("-", 1)[-1].rsplit(".", 1)[0] for x in p}) > 1
    )  # fmt: skip
    similar_same = sum(1 for p in out["similar"])
    n_found, n_total = sum(found.values()), sum(total.values())
    lines = [
        "# Dedup: planted copies and distinct same-person photos",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, CPU flags: {cpu_flags()}; `python benchmarks/dedup.py"
        f"{'' if args.people is None else f' --people {args.people}'} --per-kind {args.per_kind}`.",
        "",
        f"Set: {meta['people']} LFW people with at least 2 photos, {meta['photos'] - len(meta['copies'])} of their "
        f"photos as they are, and {len(meta['copies'])} planted copies ({args.per_kind} of each kind, each of "
        f"another original; benchmarks/dedup_set.py), indexed with head `{args.head}` (the folder default where "
        "no dinov2/clip weights are present). Negatives: every pair of two distinct LFW files of one person, "
        f"{negatives:,} pairs.",
        "",
        "| edit kind | found | recall |",
        "| --- | ---: | ---: |",
    ]
    for kind in KINDS:
        lines.append(f"| {kind} | {found[kind]} / {total[kind]} | {found[kind] / max(1, total[kind]):.1%} |")
    lines += [
        f"| **all** | {n_found} / {n_total} | {n_found / max(1, n_total):.1%} |",
        "",
        f"- Distinct same-person LFW pairs reported as copies: **{len(false)}** of {negatives:,} "
        "(each listed below, to be looked at: LFW holds a few copies of its own).",
        f"- Copy pairs joining a planted copy to another original than its own: {len(wrong_group)}.",
        f"- Similar shots reported (face cosine above the threshold, pixels say another photo): {similar_same}.",
        f"- Groups: {len(out['groups'])}. Pairs verified by their pixels: see `lookalike dedup` progress.",
        f"- Time: `lookalike index` {t_index:.0f} s; `lookalike dedup` (whole process, {meta['photos']:,} photos) "
        f"{t_dedup:.1f} s = **{1000 * t_dedup / meta['photos']:.1f} s per 1,000 photos**.",
        "",
        "Reported as copies among distinct LFW files:",
        "",
    ]
    lines += [f"- `{Path(a).parent.name}/{Path(a).name}` and `{Path(b).name}`" for a, b in false] or ["- none"]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
