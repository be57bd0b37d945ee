"""`lookalike query --rerank metric`: reorder FAISS's top candidates by seed 000's eq. 11.

score(g) = ||M_ind (.) (f_q - f_g)|| on the head's feature maps (lookalike/similarity/metric.py), smaller first. M comes
from (`--metric-from`, default `auto` tries them in this order):
1. `identity`: the query's identity (`--identity`, or the label of the query photo in the index) when the
   index holds at least 3 labelled faces of it: P_ind = those faces, P_arb = up to 100 other faces;
2. `global`: one weighting learnt across the index's labelled identities (`metric.learn_global_metric`; up to
   200 identities with 2+ faces, 4 faces each), when the index has at least 10 such identities;
3. `photo`: the query photo alone: P_ind = 12 augmentations of its face (flip, small crops, colour jitter),
   P_arb = up to 100 faces of the index.
Metrics are cached in the index folder (`metrics/<readable key>-<sha256 of the key>.pt` for the keys
`identity:<name>`, `global`, `photo-<sha256[:16]>`), each file checked on load against its key, the head's
weights and (identity and global metrics) the faces it was learnt from, so a changed head, gallery or
person relearns them and two names never share a file.
"""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import numpy as np

from lookalike.errors import LookalikeError
from lookalike.faces.align import CROP_SIZES, FaceGeometry, crop_face
from lookalike.faces.photos import Photo, load_photo
from lookalike.heads.base import FEATURE_MAPS
from lookalike.index.layout import METRICS
from lookalike.similarity.metric import Metric, learn_global_metric, learn_metric, prepare

#: Candidates FAISS hands the reranker per query (at least k).
DEFAULT_CANDIDATES = 50
#: Where a query's metric may come from (`--metric-from`).
METRIC_SOURCES = ("auto", "identity", "global", "photo")
#: The global metric needs this many labelled identities with 2+ faces.
MIN_GLOBAL_IDENTITIES = 10


def augmentations(crop: np.ndarray, n: int = 12, seed: int = 0) -> np.ndarray:
    """`n` variants of one crop `(S, S, 3) uint8`: the mirror, small crops rescaled, colour jitter -> `(n, S, S, 3)`."""
    import cv2

    rng = np.random.default_rng(seed)
    s = crop.shape[0]
    out = [crop, crop[:, ::-1]]
    while len(out) < n:
        img = crop[:, ::-1] if rng.random() < 0.5 else crop
        c = round(s * rng.uniform(0.88, 0.97))
        x, y = rng.integers(0, s - c + 1, size=2)
        img = cv2.resize(np.ascontiguousarray(img[y : y + c, x : x + c]), (s, s), interpolation=cv2.INTER_LINEAR)
        gain = rng.uniform(0.85, 1.15, size=3)
        img = np.clip(img.astype(np.float32) * gain + rng.uniform(-12, 12), 0, 255).astype(np.uint8)
        out.append(img)
    return np.stack([np.ascontiguousarray(x) for x in out[:n]])


def metric_file_name(key: str) -> str:
    """A file name per cache key, collision-free: a readable prefix plus the key's digest (`王伟` and `李娜`
    share the prefix `_` but not the digest)."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)[:60]
    return f"{readable}-{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}.pt"


class MetricReranker:
    """Feature maps of an index's faces on demand, and per-query metrics, for one open `Searcher`."""

    def __init__(self, searcher, n_arb: int = 100, steps: int = 150, seed: int = 0) -> None:
        if searcher.head is None or not searcher.head.can(FEATURE_MAPS):
            raise LookalikeError(
                "--rerank metric needs a head with feature maps (facenet-casia, vggface2, arcface-r50, trained "
                f"heads); this index's head is {searcher.store.head!r}"
            )
        self.s = searcher
        self.head = searcher.head
        self.n_arb, self.steps, self.seed = n_arb, steps, seed
        t = searcher.store.faces(["face_id", "path", "sha256", "box", "landmarks", "identity"])
        self._sha = dict(zip(t["face_id"].to_pylist(), t["sha256"].to_pylist(), strict=True))
        self._geo = {
            fid: (p, FaceGeometry(np.asarray(b, np.float32), np.asarray(lm, np.float32).reshape(5, 2)))
            for fid, p, b, lm in zip(*(t[c].to_pylist() for c in ("face_id", "path", "box", "landmarks")), strict=True)
        }
        self._ident = dict(zip(t["face_id"].to_pylist(), t["identity"].to_pylist(), strict=True))
        self._maps: dict[str, np.ndarray] = {}
        self._metrics: dict[str, Metric] = {}  # learnt or loaded once per process
        #: set to a Metric to use it as the global one instead of learning it from the index (benchmarks)
        self.fixed_global: Metric | None = None
        self.metrics_dir = Path(searcher.store.root) / METRICS

    def crops_of(self, face_ids: list[str]) -> np.ndarray:
        """Head crops of indexed faces `(N, S, S, 3) uint8` (an unreadable photo gives a grey crop)."""
        out = []
        for fid in face_ids:
            path, g = self._geo[fid]
            item = load_photo(path)
            if isinstance(item, Photo):
                out.append(crop_face(item.rgb, g, self.head.crop))
            else:
                size = CROP_SIZES[self.head.crop]
                out.append(np.full((size, size, 3), 128, np.uint8))
        return np.stack(out)

    def maps_of(self, face_ids: list[str]) -> np.ndarray:
        """Prepared feature maps of indexed faces `(N, Z, H, W)`, computed once per face."""
        todo = [f for f in dict.fromkeys(face_ids) if f not in self._maps]
        if todo:
            _, m = self.head.embed_with_maps(self.crops_of(todo))
            self._maps.update(zip(todo, prepare(m), strict=True))
        return np.stack([self._maps[f] for f in face_ids])

    def _arbitrary(self, exclude_identity: str | None, exclude_ids: set[str]) -> list[str]:
        pool = [
            f
            for f, i in self._ident.items()
            if f not in exclude_ids and (exclude_identity is None or i != exclude_identity)
        ]
        return random.Random(self.seed).sample(pool, min(self.n_arb, len(pool)))

    def _cached(self, key: str, learn, fingerprint: str = "") -> Metric:
        known = self._metrics.get(key)
        if known is not None and known.info.get("fingerprint", "") == fingerprint:
            return known
        m = self._load_or_learn(key, learn, fingerprint)
        self._metrics[key] = m
        return m

    def _load_or_learn(self, key: str, learn, fingerprint: str) -> Metric:
        path = self.metrics_dir / metric_file_name(key)
        if path.exists():
            try:
                m = Metric.load(path)
            except Exception:  # a damaged cache file is relearnt, never trusted
                m = None
            if m is not None:
                same_head = m.info.get("weights_sha256") == self.head.weights_sha256
                same_key = m.info.get("key") == key
                if same_head and same_key and m.info.get("fingerprint", "") == fingerprint:
                    return m
        m = learn()
        m.info["weights_sha256"] = self.head.weights_sha256
        m.info["key"] = key
        if fingerprint:
            m.info["fingerprint"] = fingerprint
        try:
            m.save(path)
        except OSError:
            pass  # a read-only index still reranks, it just relearns
        return m

    def identity_metric(self, identity: str) -> Metric | None:
        """The cached metric of a labelled identity, or None when the index has fewer than 3 of its faces."""
        own = [f for f, i in self._ident.items() if i == identity]
        if len(own) < 3:
            return None

        def learn() -> Metric:
            arb = self._arbitrary(identity, set(own))
            return learn_metric(self.maps_of(own), self.maps_of(arb), steps=self.steps, seed=self.seed)

        # relearnt when the identity's faces change (a photo added, removed or edited in place)
        fingerprint = hashlib.sha256("\n".join(f"{f} {self._sha[f]}" for f in sorted(own)).encode()).hexdigest()[:16]
        return self._cached(f"identity:{identity}", learn, fingerprint)

    def global_metric(self, identities: int = 200, per_identity: int = 4) -> Metric | None:
        """One metric across the index's labelled identities, or None with fewer than 10 of 2+ faces."""
        if self.fixed_global is not None:
            return self.fixed_global
        by_id: dict[str, list[str]] = {}
        for f, i in sorted(self._ident.items()):
            if i is not None:
                by_id.setdefault(i, []).append(f)
        multi = sorted(i for i, fs in by_id.items() if len(fs) >= 2)
        if len(multi) < MIN_GLOBAL_IDENTITIES:
            return None
        chosen = random.Random(self.seed).sample(multi, min(identities, len(multi)))
        faces = [f for i in sorted(chosen) for f in by_id[i][:per_identity]]
        fingerprint = hashlib.sha256("\n".join(faces).encode()).hexdigest()[:16]

        def learn() -> Metric:
            return learn_global_metric(
                self.maps_of(faces), [self._ident[f] for f in faces], steps=2 * self.steps, seed=self.seed
            )

        return self._cached("global", learn, fingerprint)

    def photo_metric(self, crop: np.ndarray, sha256: str) -> Metric:
        """A metric learnt from one face's augmentations against faces of the index."""

        def learn() -> Metric:
            _, m = self.head.embed_with_maps(augmentations(crop, seed=self.seed))
            arb = self._arbitrary(None, set())
            return learn_metric(prepare(m), self.maps_of(arb), steps=self.steps, seed=self.seed)

        return self._cached(f"photo-{sha256[:16]}", learn)

    def metric_for(self, crop: np.ndarray, sha256: str, identity: str | None, source: str = "auto"):
        """`(Metric, how)` for a query face by `source` (one of `METRIC_SOURCES`); see the module's docstring."""
        if source not in METRIC_SOURCES:
            raise LookalikeError(f"unknown metric source {source!r}; use one of {', '.join(METRIC_SOURCES)}")
        if source in ("auto", "identity") and identity:
            m = self.identity_metric(identity)
            if m is not None:
                return m, f"identity {identity}"
        if source == "identity":
            raise LookalikeError(
                f"no identity metric: the index holds fewer than 3 labelled faces of {identity!r}"
                if identity
                else "no identity metric: the query photo has no label in the index; give --identity NAME"
            )
        if source in ("auto", "global"):
            m = self.global_metric()
            if m is not None:
                return m, "global"
            if source == "global":
                raise LookalikeError(
                    f"no global metric: the index holds fewer than {MIN_GLOBAL_IDENTITIES} labelled identities "
                    "with 2+ faces (index with --labels, or folders per person)"
                )
        return self.photo_metric(crop, sha256), "query augmentations"

    def rerank(
        self,
        crop: np.ndarray,
        sha256: str,
        matches: list,
        k: int,
        identity: str | None = None,
        source: str = "auto",
    ) -> tuple:
        """Reorder `matches` (query.Match) by eq. 11; returns `(top k matches, how the metric was found)`."""
        if not matches:
            return matches, "none"
        metric, how = self.metric_for(crop, sha256, identity, source)
        _, fq = self.head.embed_with_maps(crop[None])
        d = metric.distance(prepare(fq)[0], self.maps_of([m.face_id for m in matches]))
        order = np.argsort(d, kind="stable")[:k]
        out = []
        for r, i in enumerate(order, start=1):
            m = matches[int(i)]
            m.rank = r
            out.append(m)
        return out, how


def rerank_answers(searcher, answers: list, k: int, identity: str | None = None, source: str = "auto") -> list[str]:
    """Rerank each answered query of `Searcher.query_photos` in place (cut to `k`); returns how, per answer.

    The query's face crop is the one `query_photos` kept with the answer: nothing is detected again.
    """
    rr = MetricReranker(searcher)
    hows = []
    for a in answers:
        if a.error or not a.results:
            hows.append("none")
            continue
        sha = a.sha256
        ident = identity or searcher.identity_of_sha(sha)
        a.results, how = rr.rerank(a.face.crop, sha, a.results, k, ident, source)
        a.rerank = how
        hows.append(how)
    return hows
