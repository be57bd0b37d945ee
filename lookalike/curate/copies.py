"""Is this the same photo? Geometric verification of two photos, for `lookalike dedup`.

A face embedding says "same person, similar pose", not "same photo": two frames of one press conference score
as high as a re-encoded copy. What a copy has and another shot of the same scene lacks is pixels that line up:

1. keypoints (OpenCV's ORB) of both photos, matched (Lowe's ratio test), and one similarity transform (rotation,
   uniform scale, shift: `cv2.estimateAffinePartial2D` with RANSAC) that most matches agree with: its *inliers*.
   A resize, a crop, a border, a rotation, a screenshot (the photo scaled and placed on a canvas) are each such a
   transform; a re-encode, a colour edit or a caption leave it the identity.
2. the second photo warped onto the first by that transform, and the *face correlation* of the two grey faces (the
   first photo's main face box) pixel for pixel: of their ranks (a brightness or colour edit keeps their order,
   even with clipped highlights), over the 90% that agree best (a caption across the chin is left out). A copy's
   faces correlate at 0.9935-1.0 whatever the edit; another frame of the same scene (the background lines up,
   hundreds of inliers) has a face that moved or changed expression: 0.988 at most on LFW's same-person pairs
   (benchmarks/dedup.md). Pearson's r of the raw pixels was tried first: a clipped brightness edit fell to 0.944
   and a caption over the chin to 0.847, inside the 0.95 of different frames.

Both thresholds were chosen on that benchmark: planted copies of nine edit kinds against every same-person pair of
distinct LFW photos. Why not perceptual hashes alone (imagehash's pHash, measured there too): a border, a crop, a
rotation or a screenshot move a whole-photo pHash by 26-38 bits while two different photos of one person come as
close as 6 bits, so no radius separates them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

#: Matches consistent with one similarity transform that a copy has at least (planted copies: >= 303 of 1,500
#: keypoints; other shots of one scene up to ~250 on LFW): with MIN_FACE_CORR, what makes a copy.
MIN_INLIERS = 80
#: The faces' trimmed rank correlation once aligned by that transform (`_face_correlation`): planted copies of nine
#: kinds >= 0.9935, two different photos of one person with >= 80 inliers <= 0.9878 (all of LFW, sface's 3 nearest:
#: benchmarks/dedup.md), so the line sits between them.
MIN_FACE_CORR = 0.99
#: The share of a face's pixels the correlation keeps: those whose ranks agree best.
TRIM = 0.9
#: The side photos are compared at: smaller ones are upsampled (ORB needs ~300 px), larger ones reduced.
SIDE_MIN, SIDE_MAX = 300, 512
FEATURES = 1000


@dataclass(frozen=True)
class Evidence:
    """What two photos share. inliers: keypoint matches one similarity transform explains; face_corr: the faces'
    pixel correlation once aligned (0 when no transform was found); scale and angle: that transform (photo b to
    photo a, at their compared sizes, degrees)."""

    inliers: int
    face_corr: float
    scale: float = 1.0
    angle: float = 0.0

    @property
    def is_copy(self) -> bool:
        return self.inliers >= MIN_INLIERS and self.face_corr >= MIN_FACE_CORR

    def as_json(self) -> dict:
        return {"inliers": self.inliers, "face_corr": round(self.face_corr, 4), "scale": round(self.scale, 4),
                "angle": round(self.angle, 2)}  # fmt: skip


@dataclass
class _Keyed:
    grey: np.ndarray
    scale: float
    points: np.ndarray
    descriptors: np.ndarray | None


class PhotoMatcher:
    """Compares photos by path; each photo is read and its keypoints found once, kept for the last `cache` photos
    (a run's candidates come sorted, so a photo's pairs meet it while it is cached)."""

    def __init__(self, cache: int = 512) -> None:  # ~0.3 MB a photo (a 512 px grey image, its keypoints)
        import cv2

        self._orb = cv2.ORB_create(nfeatures=FEATURES, fastThreshold=10, edgeThreshold=15)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        self._cache: OrderedDict[str, _Keyed | None] = OrderedDict()
        self._size = cache

    def _keyed(self, path: str) -> _Keyed | None:
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        item = self._read(path)
        self._cache[path] = item
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return item

    def _read(self, path: str) -> _Keyed | None:
        import cv2

        from lookalike.faces.photos import Photo, load_photo

        photo = load_photo(path, draft_side=SIDE_MAX)  # the same decoder as the index: hostile files are rejects
        if not isinstance(photo, Photo):
            return None
        grey = cv2.cvtColor(photo.rgb, cv2.COLOR_RGB2GRAY)
        scale = float(photo.scale)
        long_side = max(grey.shape)
        f = SIDE_MAX / long_side if long_side > SIDE_MAX else SIDE_MIN / long_side if long_side < SIDE_MIN else 1.0
        if f != 1.0:
            grey = cv2.resize(grey, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
            scale *= f
        keypoints, descriptors = self._orb.detectAndCompute(grey, None)
        points = np.float32([k.pt for k in keypoints]).reshape(-1, 2)
        return _Keyed(grey, scale, points, descriptors)

    def compare(self, path_a: str, box_a: list[float], path_b: str) -> Evidence:
        """The evidence that `path_b` is a copy of `path_a`, whose main face is `box_a` (its file's pixels)."""
        import cv2

        a, b = self._keyed(path_a), self._keyed(path_b)
        if a is None or b is None or a.descriptors is None or b.descriptors is None:
            return Evidence(0, 0.0)
        if len(a.points) < 8 or len(b.points) < 8:
            return Evidence(0, 0.0)
        pairs = self._matcher.knnMatch(a.descriptors, b.descriptors, k=2)
        good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
        if len(good) < 8:
            return Evidence(len(good), 0.0)
        pa = a.points[[g.queryIdx for g in good]]
        pb = b.points[[g.trainIdx for g in good]]
        mat, inliers = cv2.estimateAffinePartial2D(pb, pa, method=cv2.RANSAC, ransacReprojThreshold=4.0)
        if mat is None or inliers is None:
            return Evidence(0, 0.0)
        n = int(inliers.sum())
        scale = float(np.hypot(mat[0, 0], mat[1, 0]))
        angle = float(np.degrees(np.arctan2(mat[1, 0], mat[0, 0])))
        return Evidence(n, _face_correlation(a, b, mat, box_a), scale, angle)


def _face_correlation(a: _Keyed, b: _Keyed, mat: np.ndarray, box: list[float]) -> float:
    """How well photo a's face and photo b warped onto it by `mat` agree pixel for pixel, over the pixels b covers
    (0 when it covers less than half the face): the correlation of the pixels' ranks (Spearman's: a brightness,
    contrast, gamma or clipped-highlight edit keeps the order of the pixels), over the `TRIM` of pixels whose ranks
    agree best (a caption or a logo across part of the face is left out; another expression is not one part)."""
    import cv2

    h, w = a.grey.shape
    warped = cv2.warpAffine(b.grey, mat, (w, h), flags=cv2.INTER_LINEAR)
    covered = cv2.warpAffine(np.full(b.grey.shape, 255, np.uint8), mat, (w, h), flags=cv2.INTER_NEAREST) > 0
    x1, y1, x2, y2 = (np.asarray(box, np.float64) * a.scale).round().astype(int)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return 0.0
    mask = covered[y1:y2, x1:x2]
    if mask.sum() < max(50, 0.5 * mask.size):
        return 0.0
    x = _ranks(a.grey[y1:y2, x1:x2][mask])
    y = _ranks(warped[y1:y2, x1:x2][mask])
    gap = np.abs(x - y)
    keep = gap <= np.quantile(gap, TRIM)
    x, y = x[keep] - x[keep].mean(), y[keep] - y[keep].mean()
    # sums, not BLAS dot products: a dot of a few thousand numbers through a busy BLAS thread pool took ms here
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 1e-9 else 0.0


def _ranks(values: np.ndarray) -> np.ndarray:
    """The average ranks of uint8 `values` scaled to (0, 1] (scipy's `rankdata`, by a 256-bin histogram: O(n), and
    no scipy import on this path)."""
    counts = np.bincount(values, minlength=256).astype(np.float64)
    below = np.cumsum(counts) - counts
    return (below + (counts + 1) / 2)[values] / len(values)


def nearest_pairs(i: np.ndarray, j: np.ndarray, s: np.ndarray, k: int) -> np.ndarray:
    """The pairs `(i[n], j[n])` among each photo's `k` most similar (by `s`), as a boolean mask: candidates for
    verification stay O(photos * k), however many photos one person has."""
    order = np.argsort(-s, kind="stable")
    count: dict[int, int] = {}
    keep = np.zeros(len(s), bool)
    for n in order.tolist():
        a, b = int(i[n]), int(j[n])
        if count.get(a, 0) < k or count.get(b, 0) < k:
            keep[n] = True
            count[a] = count.get(a, 0) + 1
            count[b] = count.get(b, 0) + 1
    return keep
