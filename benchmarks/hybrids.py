"""Facial hybrids benchmark: can both parents be recognised in the hybrid? Writes benchmarks/hybrids.md.

    python benchmarks/hybrids.py [--pairs-per-kind 8] [--work DIR]

Parents: the LFW people with >= 5 photos whose sex DoppelVer's individuals.csv gives (18: 11 women, 7 men); pairs
drawn (seeded) as woman-woman, man-man and woman-man. Each parent's photos are split by name order: up to 8 (but
always 2 left over) make the hybrid, the rest (up to 10) go into the gallery, so no photo that made a hybrid is
searched for. The gallery is 1,000 LFW identities: the 18 parents and 982 others drawn at random, up to 2 photos
each, indexed by the package twice: with the default head (the one whose feature maps choose the parts) and with
sface (another network, so the parts are not graded by the head that picked them).

The composition rule is chosen first on 24 development pairs of 40 other LFW people with >= 5 photos (in the same
gallery), then the test pairs are scored. For every pair composites are made from the same two portraits (eq. 10's
choice):
- pcam-sum: `make_hybrid`'s seed rule, each segment from the parent whose PCAM sums higher there;
- pcam-share: each segment from the parent for whom it holds the larger share of their own PCAM total;
- random: the same segments, each from a parent drawn by a coin (seeded per pair);
- morph: a 50/50 landmark-aligned morph (both portraits warped to the mean of their 68 landmarks, piecewise
  affine, then averaged): what the seed says a hybrid is not.
Each is queried (`mode identities`, its face found by the index's own detector in the image padded by 80 px) and
the parents' ranks among the 1,000 identities are recorded. A contact sheet of all of them is written to the work
folder (it shows LFW photos, so it is not committed).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.dedup import cpu_flags  # noqa: E402
from lookalike import config  # noqa: E402

GALLERY_IDENTITIES = 1000
DEV_PEOPLE, DEV_PAIRS = 40, 24
MAKE_AT_MOST, GALLERY_AT_MOST, OTHERS_PHOTOS = 8, 10, 2
PAD = 80
METHODS = ("pcam-sum", "pcam-share", "random", "morph")


def parents(lfw: Path) -> dict[str, str]:
    """LFW people with >= 5 photos and a DoppelVer sex label: name -> 'F' / 'M'."""
    counts = {ln.split()[0]: int(ln.split()[1]) for ln in (lfw / "names.txt").read_text().splitlines() if ln.strip()}
    out = {}
    with open(config.data_dir() / "doppelver" / "individuals.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            name = row["NAME"].strip().replace(" ", "_")
            if counts.get(name, 0) >= 5:
                out[name] = row["GENDER"].strip()
    return dict(sorted(out.items()))


def draw_pairs(sex: dict[str, str], per_kind: int, seed: int = 0) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    women = [n for n, s in sex.items() if s == "F"]
    men = [n for n, s in sex.items() if s == "M"]
    kinds = {
        "woman-woman": [(a, b) for i, a in enumerate(women) for b in women[i + 1 :]],
        "man-man": [(a, b) for i, a in enumerate(men) for b in men[i + 1 :]],
        "woman-man": [(a, b) for a in women for b in men],
    }
    return [(a, b, kind) for kind, all_pairs in kinds.items() for a, b in rng.sample(all_pairs, per_kind)]


def split(photos: list[Path]) -> tuple[list[Path], list[Path]]:
    """(make, gallery): up to 8 make the hybrid, always leaving 2 for the gallery."""
    n_make = min(MAKE_AT_MOST, len(photos) - 2)
    return photos[:n_make], photos[n_make : n_make + GALLERY_AT_MOST]


def dev_people(lfw: Path, sex: dict[str, str], seed: int = 1) -> list[str]:
    """40 other LFW people with >= 5 photos (no sex label needed): the pairs the composition rule is chosen on."""
    counts = [ln.split() for ln in (lfw / "names.txt").read_text().splitlines() if ln.strip()]
    pool = sorted(n for n, c in counts if int(c) >= 5 and n not in sex)
    return random.Random(seed).sample(pool, DEV_PEOPLE)


def dev_pairs(people: list[str], seed: int = 2) -> list[tuple[str, str, str]]:
    every = [(a, b) for i, a in enumerate(people) for b in people[i + 1 :]]
    return [(a, b, "dev") for a, b in random.Random(seed).sample(every, DEV_PAIRS)]


def build_gallery(lfw: Path, parents_: list[str], folder: Path, seed: int = 0) -> int:
    """Symlinks `folder/<name>/<file>`: every parent's gallery photos and other identities' up to 1,000; returns
    photos."""
    images = lfw / "images"
    others = sorted(p.name for p in images.iterdir() if p.is_dir() and p.name not in set(parents_))
    chosen = random.Random(seed).sample(others, GALLERY_IDENTITIES - len(parents_))
    n = 0
    for name in [*parents_, *chosen]:
        photos = sorted((images / name).glob("*.jpg"))
        keep = split(photos)[1] if name in parents_ else photos[:OTHERS_PHOTOS]
        (folder / name).mkdir(parents=True, exist_ok=True)
        for p in keep:
            link = folder / name / p.name
            if not link.exists():
                link.symlink_to(p)
            n += 1
    return n


def morph(people) -> np.ndarray:
    """A 50/50 landmark-aligned morph of the two portraits (piecewise affine to the mean 68 points, averaged)."""
    from skimage.transform import PiecewiseAffineTransform, warp

    size = people[0].image.shape[0]
    corners = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1], [size // 2, 0],
                        [size // 2, size - 1], [0, size // 2], [size - 1, size // 2]], np.float64)  # fmt: skip
    pts = [np.vstack([p.points.astype(np.float64), corners]) for p in people]
    mean = (pts[0] + pts[1]) / 2
    warped = []
    for p, src in zip(people, pts, strict=True):
        if hasattr(PiecewiseAffineTransform, "from_estimate"):  # scikit-image >= 0.26
            tf = PiecewiseAffineTransform.from_estimate(mean, src)
        else:  # pragma: no cover - older scikit-image
            tf = PiecewiseAffineTransform()
            tf.estimate(mean, src)
        warped.append(warp(p.image, tf, output_shape=(size, size), mode="edge", preserve_range=True))
    return np.clip((warped[0] + warped[1]) / 2, 0, 255).astype(np.uint8)


def padded(rgb: np.ndarray) -> np.ndarray:
    return cv2.copyMakeBorder(rgb, PAD, PAD, PAD, PAD, cv2.BORDER_REFLECT_101)


def ranks_of(searcher, image: np.ndarray, names: tuple[str, str]) -> list[int | None]:
    (answer,) = searcher.query_photos([padded(image)], k=GALLERY_IDENTITIES, mode="identities")
    if answer.error:
        return [None, None]
    order = [m.identity for m in answer.results]
    return [order.index(n) + 1 if n in order else None for n in names]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test p-value (ties dropped)."""
    from math import comb

    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


def contact_sheet(rows: list[dict], out: Path) -> None:
    from PIL import Image, ImageDraw

    cell = 160
    sheet = Image.new("RGB", (6 * cell, len(rows) * (cell + 18)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        y = r * (cell + 18)
        for c, (label, img) in enumerate(row["images"]):
            sheet.paste(Image.fromarray(img).resize((cell, cell)), (c * cell, y + 18))
            draw.text((c * cell + 4, y + 3), label[:26], fill="black")
    sheet.save(out, quality=85)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs-per-kind", type=int, default=8)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "hybrids.md")
    args = ap.parse_args()
    from lookalike.api import build_index
    from lookalike.heads import create_head
    from lookalike.similarity.hybrid import choose_segments, compose, make_hybrid, random_segments

    lfw = config.data_dir() / "lfw"
    work = args.work or Path(tempfile.mkdtemp(prefix="hybrids-"))
    work.mkdir(parents=True, exist_ok=True)
    sex = parents(lfw)
    dev = dev_people(lfw, sex)
    pairs = dev_pairs(dev) + draw_pairs(sex, args.pairs_per_kind)
    n_gallery = build_gallery(lfw, [*sex, *dev], work / "gallery")
    print(f"{len(pairs)} pairs; gallery {n_gallery} photos of {GALLERY_IDENTITIES} identities in {work}", flush=True)
    searchers, index_s = {}, {}
    for head in ("facenet-casia", "sface"):
        t0 = time.perf_counter()
        ix = build_index(work / "gallery", out=work / f"ix-{head}", head=head)
        index_s[head] = time.perf_counter() - t0
        searchers[head] = ix.searcher
        print(f"indexed with {head} in {index_s[head]:.0f} s", flush=True)
    head = create_head("facenet-casia")
    detector = searchers["facenet-casia"].detector
    results, sheet_rows, make_s = [], [], []
    for i, (a, b, kind) in enumerate(pairs):
        make = [[str(p) for p in split(sorted((lfw / "images" / n).glob("*.jpg")))[0]] for n in (a, b)]
        t0 = time.perf_counter()
        h = make_hybrid(make[0], make[1], names=(a, b), head=head, detector=detector, rule="sum")
        make_s.append(time.perf_counter() - t0)
        sums = (h.people[0].sums, h.people[1].sums)
        choices = {
            "pcam-sum": h.source,
            "pcam-share": choose_segments(sums, "share"),
            "random": random_segments(1000 + i),
        }
        images = {m: (h.image if m == "pcam-sum" else compose(h.people, c)[0]) for m, c in choices.items()}
        images["morph"] = morph(h.people)
        row = {"a": a, "b": b, "kind": kind, "segments": {m: {k: (a, b)[v] for k, v in c.items()} for m, c in choices.items()},
               "portraits": [Path(p.path).name for p in h.people], "ranks": {}}  # fmt: skip
        for hd, s in searchers.items():
            row["ranks"][hd] = {m: ranks_of(s, img, (a, b)) for m, img in images.items()}
        results.append(row)
        if kind != "dev":
            sheet_rows.append({"images": [(a, h.people[0].image), ("PCAM sum", images["pcam-sum"]),
                                          ("PCAM share", images["pcam-share"]), ("random parts", images["random"]),
                                          ("50/50 morph", images["morph"]), (b, h.people[1].image)]})  # fmt: skip
        print(f"{i + 1}/{len(pairs)} {a} + {b}: {row['ranks']}", flush=True)
    (work / "hybrids.json").write_text(json.dumps(results, indent=1))
    contact_sheet(sheet_rows, work / "contact_sheet.jpg")
    write_page(args.out, results, work, index_s, make_s, n_gallery)
    print(f"wrote {args.out}; contact sheet {work / 'contact_sheet.jpg'}")


def _both(r: list[int | None], k: int = 10) -> bool:
    return all(x is not None and x <= k for x in r)


def _summary_row(rs: list[list[int | None]], label: str) -> str:
    n = len(rs)
    both = sum(_both(x) for x in rs)
    lo, hi = wilson(both, n)
    each = [y for x in rs for y in x]
    top10 = sum(y is not None and y <= 10 for y in each)
    med = float(np.median([y if y is not None else GALLERY_IDENTITIES + 1 for y in each]))
    return (f"| {label} | {both}/{n} | {100 * lo:.0f}-{100 * hi:.0f}% | {top10}/{2 * n} | {med:.0f} | "
            f"{sum(_both(x, 50) for x in rs)}/{n} |")  # fmt: skip


HEADER = ["| composite | both parents in top 10 | 95% CI | each parent in top 10 | median parent rank | both in top 50 |",
          "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
HEADS = ("facenet-casia", "sface")


def chosen_rule(dev: list[dict]) -> str:
    """The rule with both parents in the top 10 for more dev pairs, over both heads; a tie keeps the seed's."""
    score = {m: sum(_both(r["ranks"][hd][m]) for r in dev for hd in HEADS) for m in ("pcam-sum", "pcam-share")}
    return "pcam-share" if score["pcam-share"] > score["pcam-sum"] else "pcam-sum"


def write_page(out: Path, results: list[dict], work: Path, index_s: dict, make_s: list[float], n_gallery: int) -> None:
    dev = [r for r in results if r["kind"] == "dev"]
    test = [r for r in results if r["kind"] != "dev"]
    rule = chosen_rule(dev)
    n = len(test)
    kinds = ", ".join(f"{sum(r['kind'] == k for r in test)} {k}" for k in ("woman-woman", "man-man", "woman-man"))
    lines = [
        "# Facial hybrids: are both parents recognised?",
        "",
        f"Run {date.today().isoformat()} on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"CPU flags: {cpu_flags()}; `python benchmarks/hybrids.py` (method and protocol: its docstring).",
        "",
        f"Each hybrid is made from up to 8 photos per parent and queried (`mode identities`) against a gallery of "
        f"{GALLERY_IDENTITIES} LFW identities ({n_gallery} photos) that holds the parents' other photos, never those "
        "the hybrid was made from; rank 1 = the best-scoring identity. Per pair, from the same two portraits (eq. 10's "
        "choice): **pcam-sum** (seed 000's rule: each segment from the parent whose PCAM sums higher inside it), "
        "**pcam-share** (the segment's share of each parent's own PCAM total: the two PCAMs come from two metrics "
        "whose scales differ), **random** (each segment from a parent drawn by a coin) and **morph** (a 50/50 "
        "landmark-aligned morph, what the seed says a hybrid is not). 95% CI: Wilson; paired comparisons: exact "
        "sign test over the pairs where only one of the two has both parents in the top 10.",
        "",
        f"## Choosing the rule: {len(dev)} development pairs",
        "",
        f"Pairs of {DEV_PEOPLE} other LFW people with >= 5 photos (none of the test pairs' parents). The rule with "
        "both parents in the top 10 for more of these pairs, over both heads, becomes the library's (a tie keeps the "
        f"seed's): **{rule}**.",
        "",
    ]
    for hd in HEADS:
        lines += [f"Scored by {hd}:", "", *HEADER]
        lines += [_summary_row([r["ranks"][hd][m] for r in dev], m) for m in ("pcam-sum", "pcam-share")]
        lines.append("")
    lines += [f"## Test: {n} pairs", "",
              f"The LFW people with >= 5 photos whose sex DoppelVer's individuals.csv gives ({kinds}).", ""]  # fmt: skip
    for hd in HEADS:
        grader = "the head whose maps chose the parts" if hd == "facenet-casia" else "another network: no self-grading"
        lines += [f"### Scored by {hd} ({grader})", "", *HEADER]
        lines += [
            _summary_row([r["ranks"][hd][m] for r in test], m + (" (chosen)" if m == rule else "")) for m in METHODS
        ]
        lines.append("")
        for base in ("random", "morph"):
            wins = sum(_both(r["ranks"][hd][rule]) and not _both(r["ranks"][hd][base]) for r in test)
            losses = sum(_both(r["ranks"][hd][base]) and not _both(r["ranks"][hd][rule]) for r in test)
            lines.append(f"- {rule} against {base}: only {rule} has both parents in the top 10 for {wins} pairs, only "
                         f"{base} for {losses} (p = {sign_test(wins, losses):.3f})")  # fmt: skip
        lines.append("")
    lines += ["### Every test pair", "",
              f"| pair | kind | parts from A ({rule}) | ranks A,B facenet-casia / sface: {rule} | random | morph |",
              "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip

    def cell(r: dict, m: str) -> str:
        return " / ".join(",".join("-" if y is None else str(y) for y in r["ranks"][hd][m]) for hd in HEADS)

    for r in test:
        from_a = ", ".join(k for k, v in r["segments"][rule].items() if v == r["a"]) or "nothing"
        lines.append(f"| {r['a']} + {r['b']} | {r['kind']} | {from_a} | {cell(r, rule)} | {cell(r, 'random')} | "
                     f"{cell(r, 'morph')} |")  # fmt: skip
    lines += ["", "(- : not among the 1,000 identities' answers.)", "",
              f"Making a hybrid took {np.median(make_s):.1f} s median (characterizing both parents against each other, "
              f"eq. 10, landmarks, composition); indexing the gallery {index_s['facenet-casia']:.0f} s (facenet-casia) "
              f"and {index_s['sface']:.0f} s (sface).", "",
              f"The contact sheet of the test pairs (parent A, pcam-sum, pcam-share, random, morph, parent B) was "
              f"written to `{work / 'contact_sheet.jpg'}` by the run; it shows LFW photos, which the repository never "
              "holds, so it is not committed: `python benchmarks/hybrids.py --work DIR` writes it again."]  # fmt: skip
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
