"""FAISS over L2-normalised vectors: inner product = cosine, stable int64 ids through `IndexIDMap2`.

Exact (`Flat`) by default; any FAISS factory string (`IVF4096,Flat`, `HNSW32`, `IVF1024,PQ64`) for large
galleries, trained on the vectors at hand. With a CUDA GPU and faiss GPU the index is searched on the GPU;
without one nothing changes for the user.
"""

from __future__ import annotations

import numpy as np


def _faiss():
    import faiss

    return faiss


def build_index(vectors: np.ndarray, ids: np.ndarray, factory: str = "Flat"):
    """A new `IndexIDMap2` holding `vectors (N, d) float32` under `ids (N,) int64`."""
    faiss = _faiss()
    d = vectors.shape[1]
    inner = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    if not inner.is_trained:
        if len(vectors) == 0:
            inner = faiss.IndexFlatIP(d)  # nothing to train on yet; retrained at the next finalize
        else:
            inner.train(np.ascontiguousarray(vectors, dtype=np.float32))
    index = faiss.IndexIDMap2(inner)
    if len(vectors):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    return index


def update_index(old, vectors: np.ndarray, ids: np.ndarray, factory: str = "Flat"):
    """The index for exactly (`vectors`, `ids`): the old one patched when it is exact, else rebuilt."""
    faiss = _faiss()
    ids = np.asarray(ids, dtype=np.int64)
    if old is None or factory != "Flat" or old.d != vectors.shape[1]:
        return build_index(vectors, ids, factory)
    old_ids = faiss.vector_to_array(faiss.downcast_index(old).id_map) if old.ntotal else np.zeros(0, np.int64)
    stale = np.setdiff1d(old_ids, ids)
    if len(stale):
        old.remove_ids(faiss.IDSelectorBatch(stale))
    new = ~np.isin(ids, old_ids)
    if new.any():
        old.add_with_ids(np.ascontiguousarray(vectors[new], dtype=np.float32), ids[new])
    if old.ntotal != len(ids):
        return build_index(vectors, ids, factory)
    return old


def to_gpu_if_available(index):
    """The same index on all GPUs when faiss has GPU support and a GPU is present, else unchanged.

    faiss-gpu imports on machines without a GPU but then returns an empty index from
    `index_cpu_to_all_gpus`, so the GPU count is checked first and the copy's size after.
    """
    faiss = _faiss()
    if not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() <= 0:
        return index
    try:
        gpu = faiss.index_cpu_to_all_gpus(index)
    except Exception:  # an index type without a GPU implementation (e.g. HNSW)
        return index
    return gpu if gpu.ntotal == index.ntotal else index


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by cosine: `(scores (Q, k) float32, ids (Q, k) int64)`, id -1 where fewer than k exist."""
    k = max(1, min(int(k), max(index.ntotal, 1)))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
