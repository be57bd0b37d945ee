"""Train the look-alike heads on triplets: seed 001's `lookalike` (optionally seed 002's hierarchical
integration) and seed 004's `perface`, on top of the FaceNet CASIA backbone.

On this CPU the backbone stays frozen and is run once per photo: what trains is the top of the network.
- `lookalike`: the final 1792 -> 512 projection and its batch norm (initialised from the backbone, so the
  starting point is the backbone's own embedding), Euclidean triplet loss weighted by confidence, alpha 0.05,
  Adam 1e-4, batch 32; with probability 0.5 a batch is easy triplets (negative: a random face farther from
  the anchor than the anchor's median distance, in the starting embedding).
- `lookalike --hierarchical` (seed 002): 1x1 convolutions (= linear maps of the average-pooled maps) from 10
  intermediate stages to 512, stacked with the final embedding (11 x 512) and combined by 11 learned weights
  that start at (0, ..., 0, 1); the backbone and its projection stay frozen.
- `perface`: the same top as `lookalike`, cosine triplet loss max(0, cos(a, n) - cos(a, p) + 0.1),
  SGD 0.01 momentum 0.9 weight decay 5e-4, batch 32, only unanimous triplets (confidence 1) when rated.
The backbone is facenet-casia, or ArcFace R50 (`arcface-r50`, seed 004's backbone) when its weights are in the
weights directory: there the trainable top is its `fc` (512 x 7 x 7 -> 512) and `features` batch norm over the
last stage's map, again initialised from the backbone. (No ArcFace weights exist offline, so that path is
tested with random weights for plumbing only; `--hierarchical` is FaceNet-only.)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.errors import LookalikeError
from lookalike.heads.tops import HIER_TAPS, is_arcface, make_top

KINDS = ("lookalike", "perface")


@dataclass
class Triplets:
    """Triplet file rows: anchor, positive, negative absolute paths, confidence `(T,)`, optional kind."""

    anchor: list[str]
    positive: list[str]
    negative: list[str]
    confidence: np.ndarray
    kind: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.anchor)

    def take(self, idx: np.ndarray) -> Triplets:
        pick = [int(i) for i in idx]
        return Triplets(
            [self.anchor[i] for i in pick],
            [self.positive[i] for i in pick],
            [self.negative[i] for i in pick],
            self.confidence[pick],
            [self.kind[i] for i in pick] if self.kind else [],
        )


def load_triplets(path: str | Path) -> Triplets:
    """Read a Parquet or CSV triplet file (columns anchor, positive, negative[, confidence][, kind]).

    Relative paths are taken relative to the file's folder.
    """
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    p = Path(path)
    try:
        t = pq.read_table(p) if p.suffix.lower() in (".parquet", ".pq") else pcsv.read_csv(p)
    except Exception as e:
        raise LookalikeError(f"cannot read triplet file {p}: {e}") from None
    need = {"anchor", "positive", "negative"}
    if not need <= set(t.column_names):
        raise LookalikeError(f"triplet file {p} needs columns anchor, positive, negative; has {t.column_names}")

    def col(name: str) -> list[str]:
        return [v if os.path.isabs(v) else str((p.parent / v).resolve()) for v in t[name].to_pylist()]

    conf = np.asarray(t["confidence"].to_pylist(), np.float64) if "confidence" in t.column_names else None
    return Triplets(
        col("anchor"),
        col("positive"),
        col("negative"),
        conf if conf is not None else np.ones(t.num_rows),
        [str(k) for k in t["kind"].to_pylist()] if "kind" in t.column_names else [],
    )


def backbone_features(paths: list[str], head, hierarchical: bool, geometry=None, batch: int = 32, progress=None):
    """Frozen-backbone features of each photo's main face.

    Returns `(found paths, pooled (N, 1792) float32, taps list of (N, C_i) float32 or None)`.
    """
    import torch

    from lookalike.heads.facenet import forward_with_taps
    from lookalike.similarity.facecrops import main_face_crops

    fc = main_face_crops(paths, head.crop, geometry=geometry)
    if is_arcface(head.net):  # the top reads the last stage's whole map, as ArcFace's own fc does
        if hierarchical:
            raise LookalikeError("--hierarchical (seed 002) needs the FaceNet backbone")
        pooled = []
        for i in range(0, len(fc.crops), batch):
            _, m = head.embed_with_maps(fc.crops[i : i + batch])
            pooled.append(m.reshape(len(m), -1))
            if progress:
                progress(len(m))
        return fc.paths, (np.concatenate(pooled) if pooled else np.zeros((0, 512 * 49), np.float32)), None
    pooled, taps = [], []
    keep = HIER_TAPS + ("block8",)
    with torch.inference_mode():
        for i in range(0, len(fc.crops), batch):
            _, t = forward_with_taps(head.net, head.preprocess(fc.crops[i : i + batch]), keep)
            pooled.append(t["block8"].mean((2, 3)).numpy())
            if hierarchical:
                taps.append([t[k].mean((2, 3)).numpy() for k in HIER_TAPS])
            if progress:
                progress(min(batch, len(fc.crops) - i))
    pooled_a = np.concatenate(pooled) if pooled else np.zeros((0, 1792), np.float32)
    taps_a = [np.concatenate([b[j] for b in taps]) for j in range(len(HIER_TAPS))] if hierarchical and taps else None
    return fc.paths, pooled_a, taps_a


def _loss(kind: str, a, p, n, conf):
    import torch

    if kind == "lookalike":
        return (conf * torch.clamp((a - p).norm(dim=1) - (a - n).norm(dim=1) + 0.05, min=0)).mean()
    cos_p, cos_n = (a * p).sum(1), (a * n).sum(1)
    return torch.clamp(cos_n - cos_p + 0.1, min=0).mean()


def triplet_acc(emb: np.ndarray, ia: np.ndarray, ip: np.ndarray, ineg: np.ndarray) -> float:
    """Share of triplets whose positive is closer (Euclidean on L2-normalised rows) than the negative."""
    from lookalike.similarity.triplets import triplet_accuracy

    e = emb
    return triplet_accuracy(np.linalg.norm(e[ia] - e[ip], axis=1), np.linalg.norm(e[ia] - e[ineg], axis=1))


def train(
    triplets: Triplets,
    kind: str,
    head,
    hierarchical: bool = False,
    epochs: int = 5,
    batch: int = 32,
    holdout: float = 0.2,
    seed: int = 0,
    geometry=None,
    progress=None,
    log=None,
) -> tuple[dict, dict]:
    """Train a top on `triplets`; returns `(payload to save, report)`.

    The held-out part is the triplets whose anchor's identity (its folder) falls in a random `holdout` share
    of identities, so no anchor person is seen in training.
    """
    import torch

    if kind not in KINDS:
        raise LookalikeError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if kind == "perface":
        keep = np.nonzero(triplets.confidence >= 1.0)[0]
        triplets = triplets.take(keep)
    else:
        triplets = triplets.take(np.nonzero(triplets.confidence > 0.5)[0])
    uniq = sorted(set(triplets.anchor) | set(triplets.positive) | set(triplets.negative))
    paths, pooled, taps = backbone_features(uniq, head, hierarchical, geometry, progress=progress)
    row = {p: i for i, p in enumerate(paths)}
    ok = [
        i
        for i in range(len(triplets))
        if {triplets.anchor[i], triplets.positive[i], triplets.negative[i]} <= row.keys()
    ]
    tr_all = triplets.take(np.array(ok, np.int64))
    if len(tr_all) < 10:
        raise LookalikeError(f"only {len(tr_all)} triplets have a face in all three photos; need at least 10")
    ia = np.array([row[p] for p in tr_all.anchor])
    ip = np.array([row[p] for p in tr_all.positive])
    ineg = np.array([row[p] for p in tr_all.negative])
    conf = tr_all.confidence.astype(np.float32)
    idents = sorted({Path(p).parent.name for p in tr_all.anchor})
    held_ids = set(rng.choice(idents, size=max(1, round(holdout * len(idents))), replace=False).tolist())
    held = np.array([Path(p).parent.name in held_ids for p in tr_all.anchor])
    if held.all() or not held.any():
        held = rng.random(len(tr_all)) < holdout
    tr, te = np.nonzero(~held)[0], np.nonzero(held)[0]

    top = make_top(head.net, kind, hierarchical, [t.shape[1] for t in taps] if taps else None)
    X = torch.from_numpy(pooled)
    T = [torch.from_numpy(t) for t in taps] if taps else None

    def embed_all() -> np.ndarray:
        top.eval()
        with torch.no_grad():
            return top(X, T).numpy()

    base = embed_all()

    def accs(e: np.ndarray) -> dict:
        out = {"train": triplet_acc(e, ia[tr], ip[tr], ineg[tr]), "held_out": triplet_acc(e, ia[te], ip[te], ineg[te])}
        if tr_all.kind:
            for k in sorted(set(tr_all.kind)):
                sel = te[np.array([tr_all.kind[i] == k for i in te], bool)] if len(te) else te
                if len(sel):
                    out[f"held_out_{k}"] = triplet_acc(e, ia[sel], ip[sel], ineg[sel])
        return {k: round(v, 4) for k, v in out.items()}

    before = accs(base)
    params = [p for p in top.parameters() if p.requires_grad]
    if kind == "lookalike":
        opt = torch.optim.Adam(params, lr=1e-4)
    else:
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
    # Easy negatives (seed 001): per anchor, faces farther than the anchor's median distance in the start space.
    losses = []
    for ep in range(epochs):
        top.train()
        order = rng.permutation(tr)
        total, count = 0.0, 0
        for s in range(0, len(order), batch):
            b = order[s : s + batch]
            a_i, p_i, n_i = ia[b], ip[b], ineg[b].copy()
            c = torch.from_numpy(conf[b])
            if kind == "lookalike" and rng.random() < 0.5:
                for j, anc in enumerate(a_i):
                    d = np.linalg.norm(base - base[anc], axis=1)
                    far = np.nonzero(d > np.median(d))[0]
                    n_i[j] = rng.choice(far) if len(far) else n_i[j]
                c = torch.ones_like(c)
            sel = np.concatenate([a_i, p_i, n_i])
            e = top(X[sel], [t[sel] for t in T] if T else None)
            a, p, n = e[: len(b)], e[len(b) : 2 * len(b)], e[2 * len(b) :]
            loss = _loss(kind, a, p, n, c)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
            count += len(b)
        losses.append(round(total / max(count, 1), 6))
        if log:
            log(f"epoch {ep + 1}/{epochs}: loss {losses[-1]:.5f}")
    after = accs(embed_all())
    report = {
        "kind": kind,
        "hierarchical": hierarchical,
        "base_head": head.name,
        "triplets": len(tr_all),
        "train_triplets": len(tr),
        "held_out_triplets": len(te),
        "held_out_identities": len(held_ids),
        "kinds": {k: tr_all.kind.count(k) for k in sorted(set(tr_all.kind))} if tr_all.kind else {},
        "photos_with_face": len(paths),
        "epochs": epochs,
        "backbone": head.name,
        "loss_per_epoch": losses,
        "accuracy_before": before,
        "accuracy_after": after,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    payload = {
        "kind": kind,
        "hierarchical": hierarchical,
        "base_head": head.name,
        "base_weights_sha256": head.weights_sha256,
        "tap_channels": [t.shape[1] for t in taps] if taps else [],
        "state": {k: v.detach().clone() for k, v in top.state_dict().items()},
    }
    return payload, report


def save_trained(payload: dict, report: dict, name: str, weights_dir: Path | None = None) -> Path:
    """Write `trained/<kind>-<name>.pt` (+ `.json` record with its sha256, + `.report.json`) in the weights dir."""
    import io

    import torch

    from lookalike import config
    from lookalike.atomic import atomic_write_bytes, atomic_write_text
    from lookalike.heads.trained import trained_path
    from lookalike.weights import sha256_file

    dest = trained_path(payload["kind"], name, weights_dir or config.weights_dir())
    dest.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(dest, buf.getvalue())
    record = {
        "sha256": sha256_file(dest),
        "source": "lookalike train",
        "base_head": payload["base_head"],
        "report": report,
    }
    atomic_write_text(dest.with_name(dest.name + ".json"), json.dumps(record, indent=2))
    return dest
