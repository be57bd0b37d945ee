"""Characterise one person from a set of portraits (seed 000): learned metric, PCAM heat maps, most and
least representative portraits, characteristic face parts; written as JSON, PNG heat maps and an HTML page.

P_ind are the person's photos; P_arb are arbitrary other faces (a folder or an index, else random LFW people).
Portraits are ranked by their mean learned-metric distance (eq. 11) to the rest of the set
(`Metric.set_distance`); eq. 9's value is reported beside it (see lookalike/similarity/metric.py for why).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lookalike.atomic import atomic_write_text
from lookalike.errors import LookalikeError
from lookalike.faces.scan import iter_photo_files
from lookalike.similarity.facecrops import FaceCrops, geometry_from_index, main_face_crops
from lookalike.similarity.metric import Metric, learn_metric, prepare

PARTS = ("eyes", "eyebrows", "nose", "mouth")


def part_masks(landmarks: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Boolean masks `(size, size)` of each face part, from the 5 landmarks `(5, 2)` in crop pixels.

    With only 5 points the regions are boxes scaled by the eye distance: eyes around each eye centre,
    eyebrows the band just above them, nose between the eye line and the mouth, mouth around the corners.
    """
    le, re_, nose, lm, rm = (np.asarray(p, np.float64) for p in landmarks)
    ed = max(float(np.hypot(*(re_ - le))), 1.0)
    yy, xx = np.mgrid[0:size, 0:size]

    def box(cx: float, cy: float, hw: float, hh: float) -> np.ndarray:
        return (np.abs(xx - cx) <= hw) & (np.abs(yy - cy) <= hh)

    eyes = box(*le, 0.28 * ed, 0.16 * ed) | box(*re_, 0.28 * ed, 0.16 * ed)
    brows = box(le[0], le[1] - 0.38 * ed, 0.34 * ed, 0.14 * ed) | box(re_[0], re_[1] - 0.38 * ed, 0.34 * ed, 0.14 * ed)
    eye_y = (le[1] + re_[1]) / 2
    nose_m = box(nose[0], (eye_y + 0.2 * ed + nose[1]) / 2, 0.24 * ed, max((nose[1] - eye_y) / 2, 0.2 * ed))
    mouth = box((lm[0] + rm[0]) / 2, (lm[1] + rm[1]) / 2, abs(rm[0] - lm[0]) / 2 + 0.12 * ed, 0.2 * ed)
    return {"eyes": eyes, "eyebrows": brows, "nose": nose_m, "mouth": mouth}


def upsample(pcam: np.ndarray, size: int) -> np.ndarray:
    """A PCAM `(H, W)` resized to the crop `(size, size)` (bilinear)."""
    return cv2.resize(pcam.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)


def part_sums(pcam: np.ndarray, landmarks: np.ndarray, size: int) -> dict[str, float]:
    """Total PCAM activation inside each part of one face (PCAM `(H, W)` upsampled to the crop)."""
    up = upsample(pcam, size)
    if np.isnan(landmarks).any():
        return {p: float("nan") for p in PARTS}
    return {k: float(up[m].sum()) for k, m in part_masks(landmarks, size).items()}


def heatmap_overlay(crop: np.ndarray, pcam: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The crop `(S, S, 3) uint8` with the PCAM as a JET heat map blended over it, on a shared scale lo..hi."""
    up = upsample(pcam, crop.shape[0])
    norm = np.clip((up - lo) / max(hi - lo, 1e-12), 0, 1)
    heat = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    return (0.55 * crop + 0.45 * heat).astype(np.uint8)


def default_arbitrary(exclude: set[str], n: int = 100, seed: int = 0) -> list[Path]:
    """One photo each of `n` random LFW people (not in `exclude`), from the shared data folder."""
    from lookalike import config

    root = config.data_dir() / "lfw" / "images"
    if not root.is_dir():
        raise LookalikeError(f"no --against given and no LFW at {root} to draw arbitrary faces from")
    people = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in exclude)
    chosen = random.Random(seed).sample(people, min(n, len(people)))
    return [sorted((root / name).glob("*.jpg"))[0] for name in chosen]


def arbitrary_from(source: str | Path, n: int = 100, seed: int = 0) -> tuple[list[str], dict]:
    """P_arb paths from a folder of photos or an index (main faces), at most `n`; plus known geometry."""
    from lookalike.index.store import FaceStore

    src = Path(source)
    if FaceStore.exists(src):
        geo = geometry_from_index(src)
        paths = sorted(geo)
    else:
        geo, paths = {}, sorted(str(p) for p in iter_photo_files(src))
    if len(paths) > n:
        paths = random.Random(seed).sample(paths, n)
    return paths, geo


@dataclass
class Characterization:
    """Everything learned about one set: faces, maps, the metric, PCAMs and the ranking.

    ind / arb: the crops of P_ind / P_arb. maps_*: prepared maps `(N, Z, H, W)`. pcam_*: `(N, H, W)` (ind row).
    score: per P_ind portrait, mean metric distance to the rest (small = representative); eq9: eq. 9's value.
    """

    ind: FaceCrops
    arb: FaceCrops
    metric: Metric
    pcam_ind: np.ndarray
    pcam_arb: np.ndarray
    score: np.ndarray
    eq9: np.ndarray
    parts: dict[str, dict]

    @property
    def most(self) -> int:
        return int(np.argmin(self.score))

    @property
    def least(self) -> int:
        return int(np.argmax(self.score))


def characterize(
    photos: list[str | Path],
    arbitrary: list[str | Path],
    head=None,
    geometry: dict | None = None,
    steps: int = 150,
    detector=None,
) -> Characterization:
    """Learn the person's metric and read it: `photos` P_ind (>= 3 with a face), `arbitrary` P_arb (>= 2)."""
    from lookalike.heads import create_head

    head = head or create_head("facenet-casia")
    from lookalike.heads.base import FEATURE_MAPS

    if not head.can(FEATURE_MAPS):
        raise LookalikeError(f"head {head.name!r} has no feature maps; use a FaceNet head (facenet-casia)")
    ind = main_face_crops(photos, head.crop, detector, geometry)
    arb = main_face_crops(arbitrary, head.crop, detector, geometry)
    if len(ind.paths) < 3:
        raise LookalikeError(f"need at least 3 photos with a face of the person, found {len(ind.paths)}")
    if len(arb.paths) < 2:
        raise LookalikeError(f"need at least 2 arbitrary faces to learn against, found {len(arb.paths)}")
    _, mi = head.embed_with_maps(ind.crops)
    _, ma = head.embed_with_maps(arb.crops)
    mi, ma = prepare(mi), prepare(ma)
    metric = learn_metric(mi, ma, steps=steps)
    pi, pa = metric.pcam(mi)[:, 0], metric.pcam(ma)[:, 0]
    score = metric.set_distance(mi)
    size = ind.crops.shape[1]
    rep = int(np.argmin(score))
    rep_sums = part_sums(pi[rep], ind.landmarks[rep], size)
    arb_sums = [part_sums(pa[k], arb.landmarks[k], size) for k in range(len(arb.paths))]
    parts = {}
    for p in PARTS:
        others = np.array([s[p] for s in arb_sums])
        others = others[~np.isnan(others)]
        beats = float((rep_sums[p] > others).mean()) if len(others) else float("nan")
        parts[p] = {"rep_sum": round(rep_sums[p], 6), "beats_share": round(beats, 4), "characteristic": beats > 0.5}
    return Characterization(ind, arb, metric, pi, pa, score, metric.representativeness(mi), parts)


#: What `write_outputs` writes into its folder: a folder holding anything else is the user's, not ours to overwrite.
OUTPUT_NAMES = frozenset({"index.html", "summary.json", "heatmaps"})


def check_output_folder(out: Path) -> None:
    """A one-line error when `out` holds files `write_outputs` did not write (a user's own `index.html`, say); a
    new folder, an empty one or an earlier characterization's is fine."""
    if not out.exists():
        return
    if not out.is_dir():
        raise LookalikeError(f"--out {out} is a file, not a folder")
    names = {p.name for p in out.iterdir()}
    ours = False
    try:
        ours = {"portraits", "metric"} <= set(json.loads((out / "summary.json").read_text()))
    except (OSError, ValueError, TypeError):
        pass
    foreign = sorted(names - OUTPUT_NAMES) if ours else sorted(names)
    if foreign:
        raise LookalikeError(
            f"--out {out} already holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, which "
            "characterize did not write: choose a new or empty folder, or add --force to write there anyway"
        )


def write_outputs(ch: Characterization, out: Path, title: str) -> dict:
    """Heat maps (`heatmaps/NNN.png`), `summary.json` and `index.html` under `out`; returns the summary."""
    from PIL import Image

    from lookalike.render import file_data_uri, file_link, image_data_uri, render_page

    out.mkdir(parents=True, exist_ok=True)
    (out / "heatmaps").mkdir(exist_ok=True)
    lo, hi = float(np.percentile(ch.pcam_ind, 1)), float(np.percentile(ch.pcam_ind, 99))
    overlays = []
    for k, _p in enumerate(ch.ind.paths):
        img = heatmap_overlay(ch.ind.crops[k], ch.pcam_ind[k], lo, hi)
        Image.fromarray(img).save(out / "heatmaps" / f"{k:03d}.png")
        overlays.append(img)
    order = np.argsort(ch.score)
    summary = {
        "title": title,
        "portraits": [
            {
                "path": ch.ind.paths[k],
                "heatmap": f"heatmaps/{k:03d}.png",
                "score": round(float(ch.score[k]), 6),
                "eq9": round(float(ch.eq9[k]), 6),
                "rank": int(np.nonzero(order == k)[0][0]),
            }
            for k in range(len(ch.ind.paths))
        ],
        "most_representative": ch.ind.paths[ch.most],
        "least_representative": ch.ind.paths[ch.least],
        "characteristic_parts": [p for p, v in ch.parts.items() if v["characteristic"]],
        "parts": ch.parts,
        "arbitrary_faces": len(ch.arb.paths),
        "missing": {**ch.ind.missing},
        "metric": ch.metric.info,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))

    def portrait(k: int) -> dict:
        heat = file_data_uri(out / "heatmaps" / f"{k:03d}.png")  # embedded: the page stands alone when moved
        return {"crop": image_data_uri(ch.ind.crops[k], 160), "heatmap": heat, "path": ch.ind.paths[k],
                "link": file_link(ch.ind.paths[k]), "score": float(ch.score[k])}  # fmt: skip

    render_page(
        "characterize.html", out / "index.html", title=title, portraits=ch.ind.paths, arbitrary=len(ch.arb.paths),
        most=portrait(ch.most), least=portrait(ch.least), parts=ch.parts, ordered=[portrait(int(k)) for k in order],
    )  # fmt: skip
    return summary
