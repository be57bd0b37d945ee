"""YuNet detection alone, engine against engine: OpenCV's `cv2.FaceDetectorYN` (the reference), onnxruntime on the
CPU (`faces/yunet_ort.py`, the default where installed) and, where a device is named, torch on it
(`faces/yunet_torch.py`, batches of same-size photos); images/s, median ms per image and how far each engine's
faces agree with OpenCV's; writes detect-engines.md and .json.

Sets: LFW photos (150x150) and the mixed dump's photos (1-12 MP, scaled to the detector's 1600 px as indexing
does; `benchmarks/ingest.py` builds it, or any folder of photos). Agreement: OpenCV's faces matched by box
IoU > 0.5, the share matched, the largest score difference and the median box IoU of the matches. The CPU engines
run one image at a time in this process with `--threads` threads (1: as a worker process runs them). The engines
take turns image by image, so a noisy machine slows them alike.

Usage: python benchmarks/detect_engines.py --lfw DIR [--mixed DIR] [--device cuda] [--n 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from lookalike.eval.report import machine, machine_line, today, write_report
from lookalike.faces.photos import Photo, load_photo
from lookalike.faces.yunet import YuNetDetector, box_iou

HERE = Path(__file__).resolve().parent


def photos_of(folder: Path, n: int, side: int) -> list[np.ndarray]:
    """Up to `n` decoded photos of `folder` (recursively), each scaled to at most `side` px as indexing does."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    out = []
    for p in files:
        item = load_photo(p, draft_side=side)
        if isinstance(item, Photo):
            out.append(item.rgb)
        if len(out) >= n:
            break
    return out


def agreement(ref: list, got: list) -> dict:
    matched, total, dprob, ious = 0, 0, 0.0, []
    for a, b in zip(ref, got, strict=True):
        total += len(a)
        for f in a:
            best = max(b, key=lambda g: box_iou(f.box, g.box), default=None)
            if best is not None and box_iou(f.box, best.box) > 0.5:
                matched += 1
                ious.append(box_iou(f.box, best.box))
                dprob = max(dprob, abs(f.prob - best.prob))
    return {
        "faces": sum(len(g) for g in got), "matched_share": round(matched / max(total, 1), 4),
        "max_score_diff": round(dprob, 4), "median_iou": round(float(np.median(ious)) if ious else 0.0, 4),
    }  # fmt: skip


def compare(name: str, images: list[np.ndarray], device: str | None, batch: int) -> list[dict]:
    engines = {"opencv": YuNetDetector(engine="opencv"), "onnxruntime": YuNetDetector(engine="onnxruntime")}
    if engines["onnxruntime"].engine != "onnxruntime":
        del engines["onnxruntime"]  # not installed
    images = [img for img in images if engines["opencv"].too_small(*img.shape[:2]) is None]
    times: dict[str, list[float]] = {k: [] for k in engines}
    found: dict[str, list] = {k: [] for k in engines}
    for det in engines.values():
        det.detect_all(images[:1])  # warm-up
    for img in images:  # turn by turn
        for k, det in engines.items():
            t0 = time.perf_counter()
            found[k] += det.detect_all([img])
            times[k].append(time.perf_counter() - t0)
    rows = []
    for k in engines:
        rows.append({"set": name, "images": len(images), "engine": k, "where": "CPU",
                     "images_per_s": round(len(images) / sum(times[k]), 1),
                     "median_ms": round(1000 * float(np.median(times[k])), 1),
                     **agreement(found["opencv"], found[k])})  # fmt: skip
    if device:
        on_device = YuNetDetector(device=device)
        on_device.detect_all(images[:batch])  # warm-up: kernels, plans
        t0 = time.perf_counter()
        got = []
        for i in range(0, len(images), batch):
            got += on_device.detect_all(images[i : i + batch])
        dev_s = time.perf_counter() - t0
        rows.append({"set": name, "images": len(images), "engine": f"torch (batches of {batch})", "where": device,
                     "images_per_s": round(len(images) / dev_s, 1), "median_ms": None,
                     **agreement(found["opencv"], got)})  # fmt: skip
    return rows


def render(res: dict) -> str:
    md = [
        "# YuNet detection: one network, three engines",
        "",
        f"{machine_line(res['machine'])}. Date: {res['date']}. Made by `benchmarks/detect_engines.py`.",
        "",
        f"Detection alone (decoded photos in memory, {res['threads']} thread(s) for the CPU engines). OpenCV: "
        "`cv2.FaceDetectorYN`, the reference. onnxruntime: the same file's graph with its int8 weights folded to "
        "floats, OpenCV's padding, decoding and NMS. Torch: that graph as a torch network on a device, batches of "
        "same-size photos. Agreement: OpenCV's faces matched by IoU > 0.5.",
        "",
        "| set | images | engine | where | images/s | median ms | faces | matched | max score diff | median IoU |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in res["rows"]:
        ms = "" if r["median_ms"] is None else r["median_ms"]
        md.append(
            f"| {r['set']} | {r['images']} | {r['engine']} | {r['where']} | {r['images_per_s']} | {ms} | "
            f"{r['faces']} | {100 * r['matched_share']:.1f}% | {r['max_score_diff']} | {r['median_iou']} |"
        )
    return "\n".join(md) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--mixed", type=Path)
    ap.add_argument("--device", help="also torch on this device (cuda)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=max(1, cv2.getNumThreads()))
    ap.add_argument("--report-dir", type=Path, default=HERE)
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)  # before the detectors: onnxruntime takes OpenCV's thread count
    rows = compare("LFW 150x150", photos_of(args.lfw, args.n, 1600), args.device, args.batch)
    print(*rows, sep="\n", flush=True)
    if args.mixed:
        rows += (more := compare("mixed dump at 1600 px", photos_of(args.mixed, args.n, 1600), args.device, args.batch))
        print(*more, sep="\n", flush=True)
    res = {"machine": machine(), "date": today(), "threads": args.threads, "rows": rows}
    write_report(args.report_dir, "detect-engines", res, render(res))


if __name__ == "__main__":
    main()
