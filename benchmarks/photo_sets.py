"""The photo sets of the ingestion benchmarks, built in a temporary folder from ../shared/data (nothing is written
into the repository): LFW's 150 px photos linked as they are, and a seeded mixed dump of 1-12 MP photos (LFW photos
upscaled onto larger canvases and re-encoded as JPEG, PNG or WebP, the deepface gallery's web photos and the group
photos upscaled)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lookalike import config

HERE = Path(__file__).resolve().parent


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
