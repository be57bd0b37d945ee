"""Facial hybrids (seed 000, section 6.2): one face composed of the most characteristic parts of two people.

1. Pairwise characterization: person A's metric is learnt from A's portraits against B's (and B's against
   A's), not against arbitrary faces, so each PCAM lights what tells that person from the other.
2. Portrait selection (eq. 10): per person the aligned portrait most symmetric by deep features
   (`portraits.symmetry_scores`), unless the user names one.
3. Segmentation from dlib's 68 landmarks (`segments.segment_masks`): eyes, eyebrows, nose, mouth, the face
   base, and hair with the background (see segments.py for why hair is not apart).
4. Segment selection: per segment, the portrait whose PCAM is the stronger there. The seed compares the summed
   activations; the two PCAMs come from two metrics whose scales differ, so the default compares each segment's
   share of its own portrait's total instead (`choose_segments`, `DEFAULT_RULE`: chosen on development pairs).
5. Composition, not blending: the background's portrait is the canvas; the base's face is cloned onto it;
   each part is moved (translated only, so it keeps its own shape and size, as in a police composite) onto
   where the base face has that part, and cloned there. The seed fuses with nonlinear spectral fusion
   [BMN*17], which no maintained library offers; OpenCV's Poisson cloning (`seamlessClone`, normal clone)
   stands in: it keeps the part's own gradients and takes its colour from the face around it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from lookalike.errors import LookalikeError
from lookalike.faces.dense_landmarks import BROWS, EYES, MOUTH, NOSE, landmarks68
from lookalike.similarity.metric import learn_metric, prepare
from lookalike.similarity.portraits import FACE_BOX, SIZE, Portraits, head_input, load_portraits, symmetry_scores
from lookalike.similarity.segments import PARTS, SEGMENTS, segment_masks, segment_sums

#: the landmarks that place each part: its centre moves onto the base face's centre of the same points
PART_POINTS = {
    "eyes": [*EYES[0], *EYES[1]],
    "eyebrows": [*BROWS[0], *BROWS[1]],
    "nose": list(NOSE),
    "mouth": list(MOUTH),
}
#: pixels a clone mask grows by, so Poisson cloning has a band of the part's own skin to blend in
GROW = 3
#: pixels over which the base face's edge fades into the canvas
FEATHER = 4.0


@dataclass
class Person:
    """One side of a hybrid: its portraits, the chosen one, and what the pairwise metric says about it.

    symmetry: eq. 10 per portrait (`(N,)`, small = symmetric); chosen: the portrait used (an index into
    portraits.paths). pcam: the chosen portrait's PCAM `(h, w)` under this person's metric (learnt against the
    other person). points: its 68 landmarks; masks: its segments; sums: summed PCAM per segment.
    """

    name: str
    portraits: Portraits
    symmetry: np.ndarray
    chosen: int
    pcam: np.ndarray
    points: np.ndarray
    masks: dict[str, np.ndarray]
    sums: dict[str, float]
    metric_info: dict = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.portraits.paths[self.chosen]

    @property
    def image(self) -> np.ndarray:
        return self.portraits.images[self.chosen]


@dataclass
class Hybrid:
    """The result: `image (SIZE, SIZE, 3) uint8 RGB`, the two people, which person (0 or 1) gave each segment,
    and `provenance (SIZE, SIZE) int8`: whose pixels each output pixel was cloned from."""

    image: np.ndarray
    people: tuple[Person, Person]
    source: dict[str, int]
    provenance: np.ndarray
    rule: str

    def as_json(self) -> dict:
        a, b = self.people
        return {
            "people": [
                {
                    "name": p.name,
                    "portrait": p.path,
                    "portraits": len(p.portraits.paths),
                    "missing": p.portraits.missing,
                    "symmetry_eq10": dict(zip(p.portraits.paths, np.round(p.symmetry, 6).tolist(), strict=True)),
                    "pcam_sums": {k: round(v, 6) for k, v in p.sums.items()},
                    "metric": p.metric_info,
                }
                for p in (a, b)
            ],
            "segments": {k: self.people[v].name for k, v in self.source.items()},
            "rule": self.rule,
        }


def _bounded(mask: np.ndarray, border: int = 2) -> np.ndarray:
    """The mask with a clear border: Poisson cloning needs the region's boundary inside the image."""
    m = mask.copy()
    m[:border], m[-border:], m[:, :border], m[:, -border:] = False, False, False, False
    return m


def _shift(image: np.ndarray, dx: float, dy: float, nearest: bool = False) -> np.ndarray:
    mat = np.float32([[1, 0, dx], [0, 1, dy]])
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(image, mat, (image.shape[1], image.shape[0]), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def _clone(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson-clone `src`'s pixels under `mask` into `dst` at the same place (both `(S, S, 3)` RGB)."""
    m = _bounded(mask)
    if m.sum() < 9:
        return dst
    m8 = m.astype(np.uint8) * 255
    x, y, w, h = cv2.boundingRect(m8)
    # OpenCV places the mask's bounding box centred on `center`: x + w // 2 keeps it where it is (checked)
    return cv2.seamlessClone(src, dst, m8, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)


def _feathered(src: np.ndarray, dst: np.ndarray, mask: np.ndarray, px: float = FEATHER) -> np.ndarray:
    """`src` laid over `dst` under `mask`, its edge feathered over about `px` pixels (a Gaussian of the mask)."""
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), px)[..., None]
    return (alpha * src + (1 - alpha) * dst).round().astype(np.uint8)


def _grow(mask: np.ndarray, px: int = GROW) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def compose(people: tuple[Person, Person], source: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """The hybrid image and its provenance map from each segment's person (`source`: segment -> 0 or 1)."""
    canvas_from, base_from = source["background"], source["base"]
    out = people[canvas_from].image.copy()
    prov = np.full((SIZE, SIZE), canvas_from, np.int8)
    base = people[base_from]
    if base_from != canvas_from:
        # Laid on, not Poisson-cloned: cloning would pull the hair's and the background's colours into the face
        # and change its skin tone, which is part of whose face it is. The parts below are cloned, so they take
        # the base's skin tone.
        face = ~base.masks["background"]
        out = _feathered(base.image, out, face)
        prov[face] = base_from
    for part in PARTS:
        s = source[part]
        if s == base_from:
            continue  # already there: the base face came with its own parts
        giver = people[s]
        dx, dy = base.points[PART_POINTS[part]].mean(0) - giver.points[PART_POINTS[part]].mean(0)
        moved_img = _shift(giver.image, dx, dy)
        moved = _shift(giver.masks[part].astype(np.uint8), dx, dy, nearest=True).astype(bool)
        # cover the base's own part too, so none of its edge shows around a smaller part
        region = _grow(moved | base.masks[part])
        out = _clone(moved_img, out, region)
        prov[_bounded(region)] = s
    return out, prov


#: how the two PCAMs are compared per segment: "sum" as seed 000 says (the total activation inside the segment),
#: "share" the segment's part of its own portrait's total (the two PCAMs come from two metrics whose scales differ)
RULES = ("sum", "share")
#: chosen on 24 development pairs of LFW people (benchmarks/hybrids.md): with "share" both parents were in the top
#: 10 of a 1,000-identity gallery for 3 and 4 pairs (facenet-casia, sface), with "sum" for 1 and 2; the raw sums let
#: one parent's stronger metric take nearly every segment
DEFAULT_RULE = "share"


def choose_segments(sums: tuple[dict[str, float], dict[str, float]], rule: str = "sum") -> dict[str, int]:
    """Per segment, the person (0 or 1) whose PCAM is the stronger there by `rule` (RULES); a tie goes to
    person 0."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, not {rule!r}")
    if rule == "share":
        sums = tuple({k: v / max(sum(abs(x) for x in s.values()), 1e-12) for k, v in s.items()} for s in sums)
    return {k: int(sums[1][k] > sums[0][k]) for k in SEGMENTS}


def random_segments(seed: int) -> dict[str, int]:
    """Each segment from a person drawn by a coin (the benchmark's baseline for PCAM choice)."""
    rng = random.Random(seed)
    return {k: rng.randrange(2) for k in SEGMENTS}


def _portraits_of(
    label: str, photos: list[str | Path], named: str | Path | None, detector, known: dict | None
) -> tuple[Portraits, int | None]:
    ports = load_portraits(list(photos), detector, known)
    chosen = None
    if named is not None:
        one = load_portraits([named], detector, known)
        if not one.paths:
            why = next(iter(one.missing.values()), "no face found")
            raise LookalikeError(f"the portrait named for {label} ({named}) cannot be used: {why}")
        if one.paths[0] in ports.paths:
            chosen = ports.paths.index(one.paths[0])
        else:
            ports = Portraits([*ports.paths, one.paths[0]], np.concatenate([ports.images, one.images]), ports.missing)
            chosen = len(ports.paths) - 1
    if len(ports.paths) < 2:
        raise LookalikeError(
            f"{label}: need at least 2 photos with a face to characterize against the other person, found "
            f"{len(ports.paths)} of {len(photos)}" + (f" ({_first_reason(ports.missing)})" if ports.missing else "")
        )
    return ports, chosen


def _first_reason(missing: dict[str, str]) -> str:
    path, why = next(iter(missing.items()))
    return f"{Path(path).name}: {why}"


def make_hybrid(
    photos_a: list[str | Path],
    photos_b: list[str | Path],
    names: tuple[str, str] = ("A", "B"),
    portraits: tuple[str | Path | None, str | Path | None] = (None, None),
    head=None,
    detector=None,
    steps: int = 150,
    segments: dict[str, int] | None = None,
    layer: str = "repeat_2",
    known: tuple[dict | None, dict | None] = (None, None),
    rule: str = DEFAULT_RULE,
) -> Hybrid:
    """A facial hybrid of two people from their photos (>= 2 with a face each).

    portraits: the portrait to use for each person (a path), else eq. 10 chooses. segments: force the person
    each segment comes from (the benchmark's random baseline); else the PCAM sums choose. known: per person,
    photo path -> the landmarks of that person's face in it, in file pixels (`load_portraits`). rule: how the
    PCAMs are compared (`choose_segments`).
    layer: the FaceNet stage whose maps the metrics and PCAMs read. Not characterize's `block8` (3 x 3 at 160
    px, good for ranking portraits, too coarse to tell a nose from a mouth): `repeat_2`, 8 x 8, nearer the
    seed's VGG-Face conv5_3 (14 x 14).
    """
    from lookalike.heads import create_head
    from lookalike.heads.base import FEATURE_MAPS

    head = head or create_head("facenet-casia")
    if not head.can(FEATURE_MAPS):
        raise LookalikeError(f"head {head.name!r} has no feature maps; use a FaceNet head (facenet-casia)")
    labels = [n if n not in ("A", "B") else f"person {n}" for n in names]
    sets = [_portraits_of(labels[i], ph, pt, detector, kn)
            for i, (ph, pt, kn) in enumerate(zip((photos_a, photos_b), portraits, known, strict=True))]  # fmt: skip
    embedded = [head.embed_with_maps(head_input(ports.images), layer=layer) for ports, _ in sets]
    maps = [prepare(m) for _, m in embedded]
    metrics = (learn_metric(maps[0], maps[1], steps=steps), learn_metric(maps[1], maps[0], steps=steps))
    people = []
    for i, ((ports, named), (vectors, _)) in enumerate(zip(sets, embedded, strict=True)):
        sym = symmetry_scores(ports.images, head, vectors)
        chosen = named if named is not None else int(np.argmin(sym))
        pcam = metrics[i].pcam(maps[i][chosen : chosen + 1])[0, 0]
        points = landmarks68(ports.images[chosen], FACE_BOX)
        masks = segment_masks(points, SIZE)
        people.append(Person(names[i], ports, sym, chosen, pcam, points, masks, segment_sums(pcam, masks),
                             metrics[i].info))  # fmt: skip
    pair = (people[0], people[1])
    if segments is None:
        source, how = choose_segments((pair[0].sums, pair[1].sums), rule), f"pcam-{rule}"
    else:
        source, how = {k: int(segments[k]) for k in SEGMENTS}, "given"
    image, prov = compose(pair, source)
    return Hybrid(image, pair, source, prov, how)
