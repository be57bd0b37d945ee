"""FAISS over L2-normalised vectors: inner product = cosine, stable int64 ids through `IndexIDMap2`.

Exact (`Flat`) by default; any FAISS factory string (`IVF4096,Flat`, `HNSW32`, `IVF1024,PQ64`) for large
galleries, trained on the vectors at hand. With a CUDA GPU and faiss GPU the index is searched on the GPU;
without one nothing changes for the user.
"""

from __future__ import annotations

import re

import numpy as np

from lookalike.errors import LookalikeError


def _faiss():
    import faiss

    return faiss


def check_factory(factory: str, dim: int) -> None:
    """Refuse, in one line and before any work, a FAISS factory string FAISS cannot build for `dim`."""
    faiss = _faiss()
    if "IDMap" in factory:
        raise LookalikeError(f"--index-type {factory!r}: leave IDMap out, the index always maps ids itself")
    try:
        faiss.IndexIDMap2(faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT))
    except Exception as e:  # faiss raises RuntimeError with a multi-line C++ message
        first = " ".join(str(e).split()).split(": ")[-1] or type(e).__name__
        raise LookalikeError(
            f"--index-type {factory!r} is not a FAISS index factory string for {dim}-d vectors ({first[:120]}); "
            "examples: Flat, HNSW32, IVF1024,Flat, IVF4096,PQ64"
        ) from None


def min_train_size(factory: str) -> int:
    """Vectors a factory needs before it is trained: FAISS's k-means asks 39 points per centroid (IVF's
    lists, a PQ's 2^nbits codes); below that an exact index serves until there are enough."""
    need = 0
    m = re.search(r"IVF(\d+)", factory)
    if m:
        need = max(need, 39 * int(m.group(1)))
    for pq in re.finditer(r"PQ\d+(?:x(\d+))?", factory):
        need = max(need, 39 * 2 ** int(pq.group(1) or 8))
    return need


def active_description(index, factory: str, n: int) -> str:
    """What serves searches now, for the manifest and `info`: the factory, or exact search until it trains."""
    faiss = _faiss()
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if factory != "Flat" and isinstance(inner, faiss.IndexFlat):
        return f"Flat (exact until {factory} can train: it needs {min_train_size(factory):,} vectors, has {n:,})"
    return factory


def build_index(vectors: np.ndarray, ids: np.ndarray, factory: str = "Flat"):
    """A new `IndexIDMap2` holding `vectors (N, d) float32` under `ids (N,) int64`.

    A factory that needs training gets it only with enough vectors (`min_train_size`); until then, or when
    FAISS's training fails, the index is exact (`active_description` says so), so a small gallery with
    `--index-type IVF1024,Flat` works and turns approximate once it has grown.
    """
    faiss = _faiss()
    d = vectors.shape[1]
    inner = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    if not inner.is_trained:
        if len(vectors) < max(1, min_train_size(factory)):
            inner = faiss.IndexFlatIP(d)  # retrained at a later finalize, once there are enough vectors
        else:
            try:
                inner.train(np.ascontiguousarray(vectors, dtype=np.float32))
            except RuntimeError:
                inner = faiss.IndexFlatIP(d)
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
