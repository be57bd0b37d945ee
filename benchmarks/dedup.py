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

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.dedup_set import KINDS, build, build_mixed  # noqa: E402


def cpu_flags() -> str:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags)


def index_and_dedup(photos: Path, index: Path, head: str, lk: list[str], env: dict) -> tuple[dict, float, float]:
    """`lookalike index` then `lookalike dedup --json` of `photos`, each a whole process: (answer, seconds, seconds)."""
    t0 = time.perf_counter()
    subprocess.run([*lk, "index", str(photos), "--out", str(index), "--head", head, "-q"], check=True, env=env)
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = subprocess.run([*lk, "dedup", str(index), "--json", "-q"], check=True, env=env, capture_output=True, text=True)
    return json.loads(r.stdout), t_index, time.perf_counter() - t0


def recall(meta: dict, out: dict) -> tuple[Counter, Counter]:
    """Planted copies found (in their original's group) and planted, by kind."""
    group_of = {p: g["keep"] for g in out["groups"] for p in [g["keep"]] + [c["path"] for c in g["copies"]]}
    found, total = Counter(), Counter()
    for a, b, kind in meta["copies"]:
        total[kind] += 1
        found[kind] += group_of.get(a, a + "\0") == group_of.get(b, b + "\1")
    return found, total


def mixed_section(work: Path, args, lk: list[str], env: dict) -> list[str]:
    """The same on a 1-12 MP dump (`dedup_set.build_mixed`): recall per kind, copies called among the originals
    (distinct photos of distinct people), and time per 1,000 photos (decoding dominates here)."""
    if args.mixed_per_kind <= 0:
        return []
    photos, index = work / "mixed", work / "mixed-index"
    meta = build_mixed(photos, args.mixed_per_kind)
    out, t_index, t_dedup = index_and_dedup(photos, index, args.head, lk, env)
    found, total = recall(meta, out)
    originals = {a for a, _, _ in meta["copies"]}
    together = sum(1 for g in out["groups"] if len(originals & {g["keep"], *(c["path"] for c in g["copies"])}) > 1)
    mp = sorted(_megapixels(a) for a in originals)
    lines = [
        "",
        "## A 1-12 MP photo dump",
        "",
        f"{len(originals)} LFW photos of distinct people, each rendered as a camera-size scene (median "
        f"{mp[len(mp) // 2]:.1f} MP, 80% JPEG, 20% PNG; benchmarks/dedup_set.py `build_mixed`), and one planted "
        f"copy of each ({args.mixed_per_kind} of each kind).",
        "",
        "| edit kind | found | recall |",
        "| --- | ---: | ---: |",
        *[f"| {k} | {found[k]} / {total[k]} | {found[k] / max(1, total[k]):.1%} |" for k in KINDS],
        f"| **all** | {sum(found.values())} / {sum(total.values())} | "
        f"{sum(found.values()) / max(1, sum(total.values())):.1%} |",
        "",
        f"- Groups holding two different originals: {together}. Similar shots: {len(out['similar'])}.",
        f"- Time: `lookalike index` {t_index:.0f} s; `lookalike dedup` {t_dedup:.1f} s for {meta['photos']} photos = "
        f"**{1000 * t_dedup / meta['photos']:.1f} s per 1,000 photos**.",
    ]
    return lines


def _megapixels(path: str) -> float:
    from PIL import Image

    with Image.open(path) as im:
        return im.size[0] * im.size[1] / 1e6


def contact_sheet(pairs: list[tuple[str, str]], out: Path) -> Path:
    """The pairs side by side, 120 px each, three pairs a row, numbered as listed."""
    import cv2
    import numpy as np

    tiles = []
    for k, (a, b) in enumerate(pairs):
        tile = np.hstack([cv2.resize(cv2.imread(a), (120, 120)), cv2.resize(cv2.imread(b), (120, 120))])
        cv2.putText(tile, str(k + 1), (3, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1)
        tiles.append(tile)
    while len(tiles) % 3:
        tiles.append(np.zeros_like(tiles[0]))
    cv2.imwrite(str(out), np.vstack([np.hstack(tiles[i : i + 3]) for i in range(0, len(tiles), 3)]))
    return out


def phash_section(meta: dict, originals: dict[str, list[str]]) -> list[str]:
    """The perceptual-hash baseline: imagehash's 64-bit pHash of each whole photo, a copy found when its hash is
    within r bits of its original's, r the largest radius at which no two distinct same-person photos are."""
    head = ["", "## Baseline: a perceptual hash of the whole photo", ""]
    try:
        import imagehash
        from PIL import Image
    except ImportError:
        return [*head, "Not run: `pip install imagehash` for this row (not a dependency of lookalike)."]

    def phash(path: str):
        with Image.open(path) as im:
            return imagehash.phash(im.convert("L"))

    hashes = {p: phash(p) for v in originals.values() for p in v}
    pair_bits = [hashes[a] - hashes[b] for v in originals.values() for i, a in enumerate(v) for b in v[i + 1 :]]
    copy_bits = [(kind, hashes[a] - phash(b)) for a, b, kind in meta["copies"]]
    per_kind = Counter(k for _, _, k in meta["copies"])
    lines = [
        *head,
        f"imagehash {imagehash.__version__} pHash (DCT of the 32x32 grey photo): a copy is found when its hash is "
        "within r bits of its original's; the last column counts pairs of two distinct LFW files of one person "
        "within r bits (LFW's own copies among them).",
        "",
        "| r (bits) | " + " | ".join(KINDS) + " | all | distinct same-person pairs |",
        "| ---: | " + " | ".join("---:" for _ in KINDS) + " | ---: | ---: |",
    ]
    for r in (2, 4, 8, 12, 16):
        hit = Counter(k for k, d in copy_bits if d <= r)
        cells = " | ".join(f"{hit[k]}/{per_kind[k]}" for k in KINDS)
        lines.append(f"| {r} | {cells} | {sum(hit.values())}/{len(copy_bits)} | {sum(d <= r for d in pair_bits):,} |")
    worst = {k: max(d for kk, d in copy_bits if kk == k) for k in KINDS}
    lines += [
        "",
        "Largest distance of a copy to its original, by kind: "
        + ", ".join(f"{k} {worst[k]}" for k in KINDS)
        + " bits. A border, a crop, a rotation or a screenshot moves the "
        "whole photo's hash as far as two different photos of one person are apart: why lookalike tells copies by "
        "keypoints and aligned pixels instead.",
    ]
    return lines


def fastdup_section(python: str | None, photos: Path, work: Path, meta: dict, originals: dict) -> list[str]:
    """fastdup on the same files (`benchmarks/dedup_fastdup.py`), scored the same way at several similarity
    thresholds; or why it did not run."""
    head = ["", "## fastdup on the same files", ""]
    if not python:
        return [*head, "Not run: pass `--fastdup-python` (a Python with fastdup; non-commercial, so optional)."]
    env = {**os.environ, "FASTDUP_PRODUCTION": "1", "SENTRY_OPT_OUT": "1", "HOME": str(work / "fastdup-home")}
    cmd = [python, str(HERE / "dedup_fastdup.py"), str(photos), str(work / "fastdup"), str(work / "fastdup.json")]
    sealed = subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    t0 = time.perf_counter()
    r = subprocess.run((["unshare", "-n"] if sealed else []) + cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        return [*head, f"Did not run: exit {r.returncode}, {(r.stderr.strip().splitlines() or [''])[-1][:200]}"]
    got = json.loads((work / "fastdup.json").read_text())
    best: dict[frozenset, float] = {}
    for a, b, sim in got["pairs"]:
        key = frozenset((str(Path(a)), str(Path(b))))
        best[key] = max(best.get(key, 0.0), sim)
    origin_of = {str(Path(p)): n for n, v in originals.items() for p in v}
    lines = [
        *head,
        f"fastdup {got['version']} (telemetry off{', no network: `unshare -n`' if sealed else ''}), its own image "
        f"embedding, each image's 4 nearest neighbours; whole process {seconds:.1f} s = "
        f"{1000 * seconds / meta['photos']:.1f} s per 1,000 photos. A planted copy is found when fastdup pairs it "
        "with its original at or above the threshold; a false pair is two distinct LFW files of one person.",
        "",
        "| similarity >= | " + " | ".join(KINDS) + " | all | distinct same-person pairs |",
        "| ---: | " + " | ".join("---:" for _ in KINDS) + " | ---: | ---: |",
    ]
    for t in (0.90, 0.95, 0.96, 0.98, 0.99):
        hit = Counter(k for a, b, k in meta["copies"] if best.get(frozenset((a, b)), 0.0) >= t)
        false = sum(1 for p, s in best.items() if s >= t and len(p) == 2
                    and all(x in origin_of for x in p) and len({origin_of[x] for x in p}) == 1)  # fmt: skip
        per_kind = Counter(k for _, _, k in meta["copies"])
        cells = " | ".join(f"{hit[k]}/{per_kind[k]}" for k in KINDS)
        lines.append(f"| {t:.2f} | {cells} | {sum(hit.values())}/{len(meta['copies'])} | {false} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=None, help="LFW people with >= 2 photos to use [all]")
    ap.add_argument("--per-kind", type=int, default=25)
    ap.add_argument("--head", default="sface")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "dedup.md")
    ap.add_argument("--fastdup-python", help="a Python with fastdup installed, to run it on the same files")
    ap.add_argument("--mixed-per-kind", type=int, default=20, help="planted copies per kind in the 1-12 MP dump")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="dedup-bench-"))
    photos, index = work / "photos", work / "index"
    meta = build(photos, args.people, args.per_kind)
    lk = [sys.executable, "-m", "lookalike"]
    env = {**os.environ, "LOOKALIKE_INDEX_HOME": str(work / "home")}
    out, t_index, t_dedup = index_and_dedup(photos, index, args.head, lk, env)
    found, total = recall(meta, out)
    copies = {frozenset(p) for p in out["exact"]} | {frozenset((p["a"], p["b"])) for p in out["copies"]}
    planted = {frozenset((a, b)) for a, b, _ in meta["copies"]}
    originals: dict[str, list[str]] = {}
    for f in sorted(photos.glob("*/*")):
        if not f.name.startswith("copy-"):
            originals.setdefault(f.parent.name, []).append(str(f))
    negatives = sum(len(v) * (len(v) - 1) // 2 for v in originals.values())
    both_lfw = [tuple(sorted(p)) for p in copies if p not in planted and not any("/copy-" in x for x in p)]
    false = sorted(p for p in both_lfw if Path(p[0]).parent == Path(p[1]).parent)  # one person's two files
    cross = sorted(p for p in both_lfw if Path(p[0]).parent != Path(p[1]).parent)  # two people's files
    via = sorted(tuple(sorted(p)) for p in copies if p not in planted and any("/copy-" in x for x in p))
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
        f"- Pairs of two LFW people's files reported as copies: {len(cross)} (LFW crops one news photo around "
        f"each person in it; a sample side by side in `{work / 'cross.png'}`).",
        f"- Other pairs joining a planted copy to an original not its own: {len(via)} (through those same pictures).",
        f"- Similar shots reported (face cosine above the threshold, pixels say another photo): {similar_same}.",
        f"- Groups: {len(out['groups'])}. Candidate pairs compared by their pixels: {out['verified']:,} "
        f"({out['verified'] / meta['photos']:.2f} per photo: each photo's 3 nearest faces, so the work grows with "
        "the photos, not their pairs).",
        f"- Time: `lookalike index` {t_index:.0f} s; `lookalike dedup` (whole process, {meta['photos']:,} photos) "
        f"{t_dedup:.1f} s = **{1000 * t_dedup / meta['photos']:.1f} s per 1,000 photos**.",
        "",
        "Reported as copies among distinct LFW files:",
        "",
    ]
    lines += [f"- `{Path(a).parent.name}/{Path(a).name}` and `{Path(b).name}`" for a, b in false] or ["- none"]
    if cross:
        rng = np.random.default_rng(0)
        contact_sheet([cross[i] for i in sorted(rng.choice(len(cross), min(24, len(cross)), replace=False))],
                      work / "cross.png")  # fmt: skip
    if false:
        sheet = contact_sheet(false, work / "flagged.png")
        lines += [
            "",
            f"Side by side in `{sheet}` (made by this run, not committed: LFW photos stay out of the repository).",
        ]
    lines += mixed_section(work, args, lk, env)
    lines += phash_section(meta, originals)
    lines += fastdup_section(args.fastdup_python, photos, work, meta, originals)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
