"""The dedup benchmark's photo set, built in a temporary folder from ../shared/data (nothing enters the repository):
LFW photos linked as they are, and planted copies of some of them, one edit kind each.

Edit kinds (what a photo library holds for "the same photo"): an exact copy, a resize, a re-encode at low JPEG
quality, a crop, a small rotation (cropped to hide the corners, as phone editors do), a colour or brightness
edit, an added border, an added caption, and a screenshot of the photo (upscaled onto a screen-sized canvas
with a title bar, saved as PNG).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

KINDS = ("exact", "resize", "reencode", "crop", "rotate", "colour", "border", "text", "screenshot")


def edit(rgb: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, str, int]:
    """`(edited RGB, file suffix, JPEG quality)` of `rgb` edited by `kind` (not "exact": a byte copy)."""
    h, w = rgb.shape[:2]
    quality = int(rng.integers(85, 96))
    if kind == "resize":
        f = float(rng.choice([rng.uniform(0.55, 0.8), rng.uniform(1.2, 1.8)]))
        if max(h, w) > 2000:  # a camera photo is shrunk to share it, not blown up
            f = float(rng.uniform(0.15, 0.6))
        return cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA), ".jpg", quality
    if kind == "reencode":
        return rgb, ".jpg", int(rng.integers(25, 55))
    if kind == "crop":
        top, bottom, left, right = (int(rng.uniform(0.02, 0.1) * s) for s in (h, h, w, w))
        return rgb[top : h - bottom, left : w - right], ".jpg", quality
    if kind == "rotate":
        angle = float(rng.uniform(3, 10) * rng.choice([-1, 1]))
        rad = np.deg2rad(abs(angle))
        zoom = np.cos(rad) + np.sin(rad)  # enough to hide the corners of a square photo
        mat = cv2.getRotationMatrix2D((w / 2, h / 2), angle, zoom)
        return cv2.warpAffine(rgb, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT), ".jpg", quality
    if kind == "colour":
        x = rgb.astype(np.float32)
        gain = rng.uniform(0.7, 1.35)
        tint = rng.uniform(0.85, 1.15, size=3)
        x = (x - 128) * rng.uniform(0.8, 1.25) + 128  # contrast
        x = x * gain * tint
        if rng.random() < 0.3:  # a black-and-white version
            x = np.repeat(x.mean(axis=2, keepdims=True), 3, axis=2)
        return np.clip(x, 0, 255).astype(np.uint8), ".jpg", quality
    if kind == "border":
        p = int(rng.uniform(0.05, 0.2) * max(h, w))
        colour = [int(c) for c in rng.choice([[255, 255, 255], [0, 0, 0], [230, 220, 200]])]
        out = cv2.copyMakeBorder(rgb, p, p, p, p, cv2.BORDER_CONSTANT, value=colour)
        return out, ".jpg", quality
    if kind == "text":
        out = rgb.copy()
        scale = w / 300
        y = int(h * rng.uniform(0.88, 0.96))
        cv2.putText(out, str(rng.choice(["Happy birthday!", "Summer 2019", "#tbt", "LOL", "(c) news"])),
                    (int(w * 0.05), y), cv2.FONT_HERSHEY_SIMPLEX, 1.2 * scale, (255, 255, 255), max(1, round(3 * scale)),
                    cv2.LINE_AA)  # fmt: skip
        return out, ".jpg", quality
    if kind == "screenshot":
        f = float(rng.uniform(1.5, 3.0)) * min(1.0, 600 / max(h, w))  # shown at most ~1,800 px wide on a screen
        big = cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_CUBIC)
        bh, bw = big.shape[:2]
        canvas = np.full((int(bh * 1.35) + 60, int(bw * 1.6), 3), int(rng.integers(20, 250)), np.uint8)
        canvas[:60] = (60, 60, 70)  # a title bar with a name on it
        cv2.putText(canvas, "IMG_2041.JPG - Photos", (20, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (240, 240, 240), 2)
        y0 = 60 + int(rng.integers(0, canvas.shape[0] - 60 - bh + 1))
        x0 = int(rng.integers(0, canvas.shape[1] - bw + 1))
        canvas[y0 : y0 + bh, x0 : x0 + bw] = big
        return canvas, ".png", quality
    raise ValueError(kind)


def lfw_people(min_photos: int = 2) -> dict[str, list[Path]]:
    """LFW's people with at least `min_photos` photos, and their photos, sorted."""
    from lookalike import config

    root = config.data_dir() / "lfw" / "images"
    people = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(d.glob("*.jpg"))
        if len(files) >= min_photos:
            people[d.name] = files
    return people


def build(dest: Path, people: int | None, per_kind: int, seed: int = 0) -> dict:
    """`dest/<person>/<photo>` links to the photos of `people` LFW people with >= 2 photos (all when None), and
    `per_kind` planted copies of each kind, each of another original, beside it as `copy-<kind>-<photo>`.

    Returns `{"copies": [(original, copy, kind)], "photos": n, "people": n}` (paths as written under dest).
    """
    rng = np.random.default_rng(seed)
    chosen = lfw_people()
    names = sorted(chosen)
    if people is not None:
        names = [names[i] for i in sorted(rng.choice(len(names), size=min(people, len(names)), replace=False))]
    dest.mkdir(parents=True, exist_ok=True)
    originals = []
    for name in names:
        (dest / name).mkdir(exist_ok=True)
        for f in chosen[name]:
            link = dest / name / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
            originals.append(link)
    picks = rng.choice(len(originals), size=min(len(originals), per_kind * len(KINDS)), replace=False)
    copies = []
    for k, idx in enumerate(picks.tolist()):
        kind = KINDS[k % len(KINDS)]
        src = originals[idx]
        if kind == "exact":
            out = src.with_name(f"copy-{kind}-{src.name}")
            shutil.copyfile(src.resolve(), out)
        else:
            bgr = cv2.imread(str(src.resolve()), cv2.IMREAD_COLOR)
            rgb, suffix, quality = edit(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), kind, rng)
            out = src.with_name(f"copy-{kind}-{src.stem}{suffix}")
            params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix == ".jpg" else []
            cv2.imwrite(str(out), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
        copies.append((str(src), str(out), kind))
    return {"copies": copies, "photos": len(originals) + len(copies), "people": len(names)}


def build_mixed(dest: Path, per_kind: int, seed: int = 0) -> dict:
    """A photo dump of 1-12 MP: `per_kind * len(KINDS)` LFW photos of distinct people, each rendered as a camera-size
    scene (benchmarks/photo_sets.py's mixed dump: the photo upscaled onto a blurred enlarged copy of itself, JPEG
    or PNG), and one planted copy of each, one edit kind each. Same return as `build`."""
    from benchmarks.photo_sets import _render_mixed

    rng = np.random.default_rng(seed)
    from lookalike import config

    root = config.data_dir() / "lfw" / "images"
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    chosen = rng.choice(len(folders), size=per_kind * len(KINDS), replace=False)
    dest.mkdir(parents=True, exist_ok=True)
    copies = []
    for k, idx in enumerate(chosen.tolist()):
        src = sorted(folders[idx].glob("*.jpg"))[0]
        mp = float(rng.uniform(1, 12))
        aspect = float(rng.choice([4 / 3, 3 / 2, 16 / 9])) ** float(rng.choice([-1, 1]))
        w = int(np.sqrt(mp * 1e6 * aspect))
        h = int(mp * 1e6 / w)
        side = int(min(w, h) * rng.uniform(0.15, 0.6) / 0.45)
        fmt = "jpg" if rng.random() < 0.8 else "png"
        spec = {"i": k, "w": w, "h": h, "dest": dest, "lfw": src, "side": side, "format": fmt,
                "x": int(rng.integers(0, max(1, w - side))), "y": int(rng.integers(0, max(1, h - side))),
                "quality": int(rng.integers(80, 96))}  # fmt: skip
        _render_mixed(spec)
        original = dest / f"mixed_{k:03d}.{fmt}"
        kind = KINDS[k % len(KINDS)]
        if kind == "exact":
            out = original.with_name(f"copy-{kind}-{original.name}")
            shutil.copyfile(original, out)
        else:
            bgr = cv2.imread(str(original), cv2.IMREAD_COLOR)
            rgb, suffix, quality = edit(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), kind, rng)
            out = original.with_name(f"copy-{kind}-{original.stem}{suffix}")
            params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
            cv2.imwrite(str(out), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
        copies.append((str(original), str(out), kind))
    return {"copies": copies, "photos": 2 * len(copies), "people": len(copies)}
