"""`--rerank metric` on a pair benchmark and the global metric, on real faces (lfw10 gallery, facenet-casia)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from lookalike.eval.metric_pairs import (
    VARIANTS,
    MapCache,
    identity_photos,
    metric_pair_scores,
    split_sets,
    training_photos,
)
from lookalike.eval.metrics import roc_auc
from lookalike.eval.protocols import PairProtocol
from lookalike.similarity.metric import learn_global_metric, plain_distance
from tests.conftest import require_data


def _protocol(root: Path) -> PairProtocol:
    """5 identity-disjoint splits of 2 people: their photos 1-4 paired within a person and across the two."""
    people = sorted(p.name for p in root.iterdir() if p.is_dir())
    a, b, same, split, ia, ib = [], [], [], [], [], []
    for s in range(5):
        x, y = people[2 * s], people[2 * s + 1]
        px = [str(root / x / f"{x}_{i:04d}.jpg") for i in range(1, 5)]
        py = [str(root / y / f"{y}_{i:04d}.jpg") for i in range(1, 5)]
        for name, photos in ((x, px), (y, py)):
            for p, q in itertools.combinations(photos, 2):
                a, b, same, split, ia, ib = a + [p], b + [q], same + [True], split + [s], ia + [name], ib + [name]
        for p, q in zip(px, py, strict=True):
            a, b, same, split, ia, ib = a + [p], b + [q], same + [False], split + [s], ia + [x], ib + [y]
    return PairProtocol(a, b, np.array(same), np.array(split), "toy", ia, ib)


def test_identity_metrics_never_learn_from_the_pairs_split():
    root = require_data("gallery", "lfw10")
    proto = _protocol(root)
    gallery = {p.name: sorted(str(q) for q in p.glob("*.jpg")) for p in root.iterdir() if p.is_dir()}
    train = training_photos(proto, identity_photos(proto, gallery), n_ind=12)
    splits = split_sets(proto)
    assert train, "every identity has 6 photos outside its split"
    for (ident, s), photos in train.items():
        assert len(photos) >= 3
        assert not set(photos) & splits[s][0], f"{ident}: a photo of split {s} was learnt from"
        assert all(Path(p).parent.name == ident for p in photos)


def test_metric_pair_scores_separate_people(lfw10_index, default_head):
    """Same-person pairs score above different-person pairs under every scoring; the metric is found per side."""
    root = require_data("gallery", "lfw10")
    proto = _protocol(root)
    gallery = {p.name: sorted(os.path.abspath(q) for q in p.glob("*.jpg")) for p in root.iterdir() if p.is_dir()}
    res = metric_pair_scores(proto, default_head, lfw10_index, gallery=gallery, n_arb=40, steps=80)
    assert set(res["scores"]) == set(VARIANTS)
    assert not res["missing"].any()
    for v, s in res["scores"].items():
        assert np.isfinite(s).all()
        assert roc_auc(s, proto.same) > 0.9, v
    # every identity of lfw10 has 6 photos outside its split: every pair is scored by identity metrics
    assert res["identity_metrics"] == 10 and res["identity_metric_pairs"] == len(proto)
    assert len(res["global_metrics"]) == 5
    # the maps are cached with the index: a second cache sees them without computing
    assert len(MapCache(default_head, lfw10_index).maps) >= len(set(proto.a + proto.b))


def test_global_metric_learns_across_identities(lfw10_index, default_head):
    """Learnt on 8 people, the global metric separates the other 2 at least as well as plain maps do."""
    root = require_data("gallery", "lfw10")
    cache = MapCache(default_head, lfw10_index)
    people = sorted(p.name for p in root.iterdir() if p.is_dir())
    photos = {n: sorted(os.path.abspath(q) for q in (root / n).glob("*.jpg")) for n in people}
    cache.ensure([p for n in people for p in photos[n]])
    train = [p for n in people[:8] for p in photos[n] if p in cache.maps]
    m = learn_global_metric(cache.get(train), [Path(p).parent.name for p in train], steps=150)
    assert m.info["kind"] == "global" and m.info["identities"] == 8
    assert m.info["loss_last"] < m.info["loss_first"]
    test = [p for n in people[8:] for p in photos[n] if p in cache.maps]
    f = cache.get(test)
    lab = np.array([Path(p).parent.name for p in test])
    iu = np.triu_indices(len(test), 1)
    same = lab[iu[0]] == lab[iu[1]]
    d_plain = np.array([plain_distance(f[i], f[j][None])[0] for i, j in zip(*iu, strict=True)])
    d_metric = np.array([m.distance(f[i], f[j][None])[0] for i, j in zip(*iu, strict=True)])
    auc_plain, auc_metric = roc_auc(-d_plain, same), roc_auc(-d_metric, same)
    assert auc_metric > 0.95 and auc_metric >= auc_plain - 0.01, (auc_metric, auc_plain)
