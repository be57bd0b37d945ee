"""Build a triplet file from the shared data, since no human similarity ratings are available offline.

Two kinds (column `kind`), confidence 1.0:
- `doppel`: anchor a photo of a DoppelVer person held by LFW, positive a photo of their doppelganger,
  negative a photo of a random other LFW person;
- `identity`: anchor and positive two photos of one LFW person, negative a photo of another person; when an
  index of LFW is at hand (`hard_from`), the negative is the closest of 20 random other people's photos in
  that index's embedding (a different head than the one trained, so the triplets are hard but not mined
  from the model's own mistakes).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lookalike.errors import LookalikeError


def _photos(root: Path, name: str) -> list[str]:
    return [str(p) for p in sorted((root / name).glob("*.jpg"))]


def build_triplets(
    data: Path, n_identity: int = 2000, per_pair: int = 60, hard_from: Path | None = None, seed: int = 0
) -> pa.Table:
    """Triplets as a table (anchor, positive, negative, confidence, kind)."""
    root = data / "lfw" / "images"
    pairs_csv = data / "doppelver" / "doppelganger_pairs_in_lfw.csv"
    if not root.is_dir() or not pairs_csv.exists():
        raise LookalikeError(f"need LFW images and the DoppelVer pair list under {data}")
    rng = random.Random(seed)
    people = sorted(p.name for p in root.iterdir() if p.is_dir())
    rows: list[tuple[str, str, str, str]] = []
    for r in csv.DictReader(pairs_csv.open()):
        for a, b in ((r["identity_a"], r["identity_b"]), (r["identity_b"], r["identity_a"])):
            pa_, pb = _photos(root, a), _photos(root, b)
            combos = [(x, y) for x in pa_ for y in pb]
            rng.shuffle(combos)
            for x, y in combos[:per_pair]:
                neg = rng.choice([p for p in people if p not in (a, b)])
                rows.append((x, y, rng.choice(_photos(root, neg)), "doppel"))
    multi = [p for p in people if len(list((root / p).glob("*.jpg"))) >= 2]
    vec, pos = None, {}
    if hard_from is not None and hard_from.exists():
        from lookalike.index.store import FaceStore, vectors_of

        st = FaceStore.open(hard_from)
        t = st.faces(["path", "is_main", "embedding"])
        t = t.filter(t["is_main"])
        vec = vectors_of(t, st.dim)
        pos = {p: i for i, p in enumerate(t["path"].to_pylist())}
    for _ in range(n_identity):
        person = rng.choice(multi)
        x, y = rng.sample(_photos(root, person), 2)
        negs = [rng.choice(_photos(root, n)) for n in rng.sample(people, 21) if n != person][:20]
        if vec is not None and x in pos and all(n in pos for n in negs):
            neg = negs[int(np.argmax(vec[[pos[n] for n in negs]] @ vec[pos[x]]))]
        else:
            neg = negs[0]
        rows.append((x, y, neg, "identity"))
    cols = list(zip(*rows, strict=True))
    return pa.table(
        {
            "anchor": list(cols[0]),
            "positive": list(cols[1]),
            "negative": list(cols[2]),
            "confidence": [1.0] * len(rows),
            "kind": list(cols[3]),
        }
    )


def triplet_accuracy(d_ap: Any, d_an: Any) -> float:
    """Share of triplets where the positive is strictly closer to the anchor: `d_ap (T,)`, `d_an (T,)` -> [0, 1]."""
    a, n = np.asarray(d_ap, np.float64), np.asarray(d_an, np.float64)
    if a.shape != n.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"need two equal 1-d arrays, got {a.shape} and {n.shape}")
    return float((a < n).mean())
