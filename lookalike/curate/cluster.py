"""People without labels: group an index's faces into people.

Method (the usual one for faces, as dlib's and face_recognition's "Chinese whispers"): a graph whose edges join
each face to those of its `k` nearest faces (FAISS) that score at or above the head's measured same-person
threshold, weighted by cosine, then weighted label propagation (networkx's `asyn_lpa_communities`, seeded):
each face repeatedly takes the label that weighs most among its neighbours, so a dense group of one person keeps
one label while a single stray edge to another group does not drag the two together (connected components of the
same graph chain people: benchmarks/cluster.md). The threshold defaults to the one measured at a false match rate
of 1e-4: stricter than a query's mark, because one false edge per face is enough to chain.

Labels are respected: a labelled face's person is its identity; the unlabelled faces of a group take the identity
most of its labelled faces carry; other groups get ids `person-N`, stable across runs (a group takes the id of the
earlier person it shares the most faces with, largest groups first; new ones the next free number).

The result is `people.parquet` in the index folder (`vector_id`, `face_id`, `person`, `labelled`), written
atomically and stamped with the index generation it was made for: after the index changes it is stale
(`read_people` says so) until `lookalike cluster` runs again.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from lookalike.config import CLUSTER_FMR, CLUSTER_K
from lookalike.index.people import read_people, write_people

_ID_RE = re.compile(r"^person-(\d+)$")


def knn_graph(vectors: np.ndarray, threshold: float, k: int = CLUSTER_K, index=None, ids: np.ndarray | None = None):
    """The symmetric sparse graph of each face's `k` nearest faces at cosine >= `threshold`, weighted by cosine.

    index, ids: the index's own FAISS index and the vector id of each row, to search it (an approximate index of a
    large gallery) instead of an exact one built here.
    """
    import faiss
    import scipy.sparse as sp

    n = len(vectors)
    if index is None:
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    kk = min(k + 1, n)
    scores, nbrs = index.search(np.ascontiguousarray(vectors, dtype=np.float32), kk)
    if ids is not None:  # vector ids -> rows (-1 stays -1)
        order = np.argsort(ids)
        pos = np.clip(np.searchsorted(ids, nbrs, sorter=order), 0, n - 1)
        nbrs = np.where((nbrs >= 0) & (ids[order[pos]] == nbrs), order[pos], -1)
    rows = np.repeat(np.arange(n), kk)
    keep = ((scores >= threshold) & (nbrs >= 0) & (nbrs != np.arange(n)[:, None])).ravel()
    g = sp.csr_matrix((scores.ravel()[keep], (rows[keep], nbrs.ravel()[keep])), shape=(n, n))
    return g.maximum(g.T)


def propagate(graph, seed: int = 0) -> np.ndarray:
    """Group labels `(N,)` by weighted label propagation on `graph` (an isolated face is its own group)."""
    import networkx as nx

    g = nx.from_scipy_sparse_array(graph)
    g.add_nodes_from(range(graph.shape[0]))
    labels = np.empty(graph.shape[0], dtype=np.int64)
    for i, members in enumerate(nx.community.asyn_lpa_communities(g, weight="weight", seed=seed)):
        labels[list(members)] = i
    return labels


def name_people(
    groups: np.ndarray, identities: list[str | None], face_ids: list[str], previous: dict[str, str] | None = None
) -> list[str]:
    """A person for each face: its identity when labelled, the majority identity of its group's labelled faces,
    else a `person-N` kept from `previous` (face_id -> person) where the group overlaps it most."""
    previous = previous or {}
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(int(g), []).append(i)
    taken: set[str] = set()
    numbers = [int(m.group(1)) for p in previous.values() if (m := _ID_RE.match(p))]
    next_free = max(numbers, default=0) + 1
    out: list[str | None] = list(identities)
    for rows in sorted(members.values(), key=len, reverse=True):
        named = Counter(identities[i] for i in rows if identities[i] is not None)
        if named:
            person = named.most_common(1)[0][0]
        else:
            before = Counter(previous[face_ids[i]] for i in rows if face_ids[i] in previous)
            person = next((p for p, _ in before.most_common() if _ID_RE.match(p) and p not in taken), None)
            if person is None:
                person, next_free = f"person-{next_free}", next_free + 1
            taken.add(person)
        for i in rows:
            if out[i] is None:
                out[i] = person
    return [str(p) for p in out]


def cluster_index(root: Path, threshold: float | None = None, fmr: float = CLUSTER_FMR, k: int = CLUSTER_K,
                  use_labels: bool = True) -> dict:  # fmt: skip
    """Group the faces of the index at `root` into people and write `people.parquet`; returns a summary.

    threshold: the cosine an edge needs (default: the head's same-person threshold at `fmr` with the index's
    detector). use_labels=False ignores identity labels (to measure the grouping on a labelled set).
    """
    from lookalike.faces.detect import LEGACY_DETECTOR, detector_spec
    from lookalike.heads.calibration import threshold_for
    from lookalike.index.store import FaceStore, vectors_of
    from lookalike.index.vector_index import EXACT_UP_TO

    t0 = time.perf_counter()
    store = FaceStore.open(root)
    det = detector_spec(str(store.manifest.get("params", {}).get("detector", LEGACY_DETECTOR))).name
    if threshold is None:
        threshold = threshold_for(store.head, det, fmr).threshold
    faces = store.faces(["vector_id", "face_id", "identity", "embedding"])
    vectors = vectors_of(faces, store.dim)
    identities = faces["identity"].to_pylist() if use_labels else [None] * faces.num_rows
    face_ids = [str(f) for f in faces["face_id"].to_pylist()]
    old = read_people(root)
    previous = dict(zip(old["face_id"].to_pylist(), old["person"].to_pylist(), strict=True)) if old else {}
    large = len(vectors) > EXACT_UP_TO  # search the index's own (approximate) FAISS index, not an exact copy
    index = store.load_index() if large else None
    ids = faces["vector_id"].to_numpy() if large else None
    groups = propagate(knn_graph(vectors, threshold, k, index, ids)) if len(vectors) else np.zeros(0, np.int64)
    people = name_people(groups, identities, face_ids, previous)
    table = pa.table({
        "vector_id": faces["vector_id"],
        "face_id": pa.array(face_ids, pa.string()),
        "person": pa.array(people, pa.string()),
        "labelled": pa.array([i is not None for i in identities], pa.bool_()),
    })  # fmt: skip
    write_people(root, table, store.manifest["generation"])
    sizes = Counter(people)
    return {
        "index": str(root), "faces": len(people), "people": len(sizes),
        "people_with_several_faces": sum(1 for c in sizes.values() if c > 1),
        "named_by_labels": len({p for p, lab in zip(people, identities, strict=True) if lab is not None}),
        "threshold": round(float(threshold), 6), "k": k, "seconds": round(time.perf_counter() - t0, 2),
        "largest": [{"person": p, "faces": c} for p, c in sizes.most_common(5)],
    }  # fmt: skip
