"""FAISS over L2-normalised vectors: inner product = cosine, stable int64 ids through `IndexIDMap2`.

`auto` (the default) is exact search up to `EXACT_UP_TO` vectors and an IVF index with 8-bit scalar
quantisation above, its `nprobe` raised until recall@10 against exact search reaches `TARGET_RECALL` (with a
margin) on held-out queries (`tune`); any FAISS factory string (`Flat`, `IVF4096,Flat`, `HNSW32`,
`IVF1024,PQ64`) can be asked for instead. A trained index takes later additions as they come and is retrained
(and tuned again) once the vectors have doubled since it was trained. On a GPU an index is searched there (faiss's
GPU build, or torch for an exact index); without one nothing changes for the user.
"""

from __future__ import annotations

import re

import numpy as np

from lookalike import config
from lookalike.errors import LookalikeError


def _faiss():
    import faiss

    return faiss


#: The default `--index-type`: chosen from the number of vectors (`auto_factory`).
AUTO = "auto"
#: Exact search up to this many vectors: on 2 CPU cores a single 512-d query over 100k vectors takes 12.5 ms
#: (benchmarks/index_query.md), over 200k about twice that; above, an IVF index answers in a few ms.
EXACT_UP_TO = config.EXACT_SEARCH_UP_TO
#: The recall@10 against exact search that `tune` raises nprobe / efSearch to reach.
TARGET_RECALL = 0.95


def auto_factory(n: int) -> str:
    """The index `auto` builds for `n` vectors: exact up to `EXACT_UP_TO`, else `IVF<nlist>,SQ8` with nlist
    the power of two nearest 4 sqrt(n) (FAISS's guideline; 4096 at 1M) and 8-bit scalar quantisation (1 byte per
    dimension: a million 512-d vectors in 0.5 GB instead of 2 GB)."""
    if n <= EXACT_UP_TO:
        return "Flat"
    nlist = 1 << round(float(np.log2(4 * np.sqrt(n))))
    return f"IVF{min(max(nlist, 64), 65536)},SQ8"


def check_factory(factory: str, dim: int) -> None:
    """Refuse, in one line and before any work, a FAISS factory string FAISS cannot build for `dim`."""
    if factory == AUTO:
        return
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


def active_description(index, factory: str, n: int, state: dict | None = None) -> str:
    """What serves searches now, for the manifest and `info`: the factory (with `auto`'s choice and the tuned
    search parameter), or exact search until it trains."""
    faiss = _faiss()
    chosen = (state or {}).get("factory") or (auto_factory(n) if factory == AUTO else factory)
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if chosen != "Flat" and isinstance(inner, faiss.IndexFlat):
        return f"Flat (exact until {chosen} can train: it needs {min_train_size(chosen):,} vectors, has {n:,})"
    out = chosen if factory != AUTO else f"{chosen} (auto for {n:,} vectors)"
    tuning = (state or {}).get("tuning")
    if tuning:
        out += f"; {tuning['param']} {tuning['value']}: recall@10 {tuning['recall']:.3f} on {tuning['queries']} queries"
    return out


def build_index(vectors: np.ndarray, ids: np.ndarray, factory: str = "Flat"):
    """A new `IndexIDMap2` holding `vectors (N, d) float32` under `ids (N,) int64`.

    A factory that needs training gets it only with enough vectors (`min_train_size`); until then, or when
    FAISS's training fails, the index is exact (`active_description` says so), so a small gallery with
    `--index-type IVF1024,Flat` works and turns approximate once it has grown. `auto` picks by size.
    """
    faiss = _faiss()
    d = vectors.shape[1]
    if factory == AUTO:
        factory = auto_factory(len(vectors))
    inner = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    if not inner.is_trained:
        if len(vectors) < max(1, min_train_size(factory)):
            inner = faiss.IndexFlatIP(d)  # retrained at a later finalize, once there are enough vectors
        else:
            try:
                inner.train(training_sample(vectors, factory))
            except RuntimeError:
                inner = faiss.IndexFlatIP(d)
    index = faiss.IndexIDMap2(inner)
    if len(vectors):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    return index


#: IVF k-means trains on at most this many vectors per list (FAISS asks 39 at least; more adds time, not recall).
TRAIN_PER_LIST = 64


def training_sample(vectors: np.ndarray, factory: str) -> np.ndarray:
    """The vectors an index trains on: all of them, or for IVF a seeded random `TRAIN_PER_LIST` per list (on 2
    CPU cores k-means over a million 512-d vectors and 4,096 lists would take ~10 minutes; over 262k, ~2)."""
    m = re.search(r"IVF(\d+)", factory)
    limit = TRAIN_PER_LIST * int(m.group(1)) if m else len(vectors)
    if len(vectors) > limit:
        pick = np.sort(np.random.default_rng(0).choice(len(vectors), limit, replace=False))
        vectors = vectors[pick]
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _is_exact(index) -> bool:
    faiss = _faiss()
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    return isinstance(inner, faiss.IndexFlat)


def _patch(old, vectors: np.ndarray, ids: np.ndarray):
    """`old` with the ids no longer present removed and the new ones added (None when that did not give exactly
    `ids`)."""
    faiss = _faiss()
    old_ids = faiss.vector_to_array(faiss.downcast_index(old).id_map) if old.ntotal else np.zeros(0, np.int64)
    stale = np.setdiff1d(old_ids, ids)
    if len(stale):
        old.remove_ids(faiss.IDSelectorBatch(stale))
    new = ~np.isin(ids, old_ids)
    if new.any():
        old.add_with_ids(np.ascontiguousarray(vectors[new], dtype=np.float32), ids[new])
    return old if old.ntotal == len(ids) else None


def update_index(old, vectors: np.ndarray, ids: np.ndarray, factory: str = "Flat", state: dict | None = None):
    """The index for exactly (`vectors`, `ids`) and its state `{"factory", "trained_on", "tuning"}`.

    An exact index is patched (stale ids out, new ones in). A trained one is patched too while the vectors have
    not doubled since it was trained and `auto` would still choose it; otherwise it is rebuilt (trained again)
    and, when approximate, tuned (`tune`). Returns `(index, state)`.
    """
    ids = np.asarray(ids, dtype=np.int64)
    state = dict(state or {})
    chosen = auto_factory(len(vectors)) if factory == AUTO else factory
    trained = int(state.get("trained_on", 0))
    if factory == AUTO and trained and trained / 2 <= len(vectors) <= 2 * trained:
        chosen = str(state.get("factory", chosen))  # keep what was trained (its nlist, or the whole-vector fallback)
    same_kind = old is not None and old.d == vectors.shape[1] and state.get("factory", "Flat") == chosen
    if same_kind and _is_exact(old) and (chosen == "Flat" or len(vectors) < min_train_size(chosen)):
        patched = _patch(old, vectors, ids)
        if patched is not None:
            return patched, {"factory": chosen, "trained_on": 0}
    elif same_kind and not _is_exact(old) and len(vectors) <= 2 * trained:
        patched = _patch(old, vectors, ids)
        if patched is not None:
            return patched, state
    index = build_index(vectors, ids, chosen)
    new_state: dict = {"factory": chosen, "trained_on": 0 if _is_exact(index) else len(vectors)}
    if not _is_exact(index):
        new_state["tuning"] = tune(index, vectors)
        if factory == AUTO and new_state["tuning"]["recall"] < TARGET_RECALL and chosen.endswith(",SQ8"):
            # 8-bit codes blur faces that nearly tie (many photos of one person): the target is out of reach at
            # any nprobe, so keep the vectors whole (4x the memory) and tune again
            chosen = chosen.replace(",SQ8", ",Flat")
            index = build_index(vectors, ids, chosen)
            new_state = {"factory": chosen, "trained_on": len(vectors), "tuning": tune(index, vectors),
                         "sq8_recall": new_state["tuning"]["recall"]}  # fmt: skip
    return index, new_state


#: `tune` aims this far above the target on its own queries, so that other queries still reach the target.
TUNE_MARGIN = 0.02


def tune(index, vectors: np.ndarray, target: float = TARGET_RECALL, queries: int = 1000, k: int = 10) -> dict:
    """Raise the index's search breadth (IVF `nprobe`, HNSW `efSearch`) until recall@k against exact search
    reaches `target` (+ `TUNE_MARGIN`) on held-out queries. Sets the parameter on `index` (FAISS saves it with the
    index) and returns `{"param", "value", "recall", "queries", "k"}`.

    The queries are indexed vectors left out of their own answers (leave-one-out: the k nearest *other* faces),
    so a query is a face near, not on, the gallery's; a query answered by itself would make any index look exact.
    """
    faiss = _faiss()
    rng = np.random.default_rng(0)
    n = len(vectors)
    pick = rng.choice(n, size=min(queries, n), replace=False)
    q = np.ascontiguousarray(vectors[pick], dtype=np.float32)
    all_ids = faiss.vector_to_array(faiss.downcast_index(index).id_map)
    own = all_ids[pick]
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(np.ascontiguousarray(vectors, dtype=np.float32))
    _, truth = exact.search(q, k + 1)
    del exact
    truth_ids = [_without(all_ids[t], o, k) for t, o in zip(truth, own, strict=True)]
    inner = faiss.downcast_index(index.index)
    ivf = faiss.try_extract_index_ivf(inner)
    if ivf is not None:
        param, values = "nprobe", [v for v in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if v <= ivf.nlist]
    elif hasattr(inner, "hnsw"):
        param, values = "efSearch", [16, 32, 64, 128, 256, 512]
    else:
        return {"param": "none", "value": 0, "recall": 1.0, "queries": len(pick), "k": k}
    recall, value = 0.0, values[-1]
    for value in values:
        set_search_param(index, param, value)
        _, got = index.search(q, k + 1)
        recall = float(np.mean([len(np.intersect1d(_without(g, o, k), t)) / k
                                for g, o, t in zip(got, own, truth_ids, strict=True)]))  # fmt: skip
        if recall >= min(1.0, target + TUNE_MARGIN):
            break
    return {"param": param, "value": int(value), "recall": round(recall, 4), "queries": len(pick), "k": k}


def _without(ids: np.ndarray, own: int, k: int) -> np.ndarray:
    """The first k of `ids` other than `own` (and other than FAISS's -1 for 'none')."""
    return ids[(ids != own) & (ids >= 0)][:k]


def set_search_param(index, param: str, value: int) -> None:
    """Set IVF `nprobe` or HNSW `efSearch` on an (ID-mapped) index."""
    faiss = _faiss()
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if param == "nprobe":
        faiss.extract_index_ivf(inner).nprobe = int(value)
    elif param == "efSearch":
        inner.hnsw.efSearch = int(value)


class TorchFlatSearch:
    """Exact inner-product search written in torch, for a GPU without faiss's GPU build: the vectors on the
    device (fp16 on CUDA, fp32 on a CPU), queries in batches, the stored vectors in chunks (memory bounded by
    `batch x chunk` scores), a running top-k merged across chunks. Same answers as `IndexFlatIP` (tested on the
    CPU; fp16 on a GPU moves scores by ~1e-3). Reference figures on one H100 (../shared/GPU.md): 1M vectors,
    92.9k queries/s batched, 0.62 ms for one."""

    def __init__(self, vectors, ids: np.ndarray, device: str | None = None, chunk: int = 1 << 20,
                 batch: int = 1024) -> None:  # fmt: skip
        """vectors: `(N, d)` numpy float32, or a torch tensor (e.g. already on the device: 10M vectors need not
        pass through host memory)."""
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = torch.float16 if torch.device(self.device).type == "cuda" else torch.float32
        if isinstance(vectors, torch.Tensor):
            self.x = vectors.to(self.device, self.dtype)
        else:
            self.x = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).to(self.device, self.dtype)
        self.ids = np.asarray(ids, dtype=np.int64)
        self.ntotal = len(self.ids)
        self.d = int(self.x.shape[1]) if self.x.ndim == 2 else 0
        self.chunk, self.batch = int(chunk), int(batch)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        k = max(1, min(int(k), self.ntotal))
        out_s, out_i = [], []
        with torch.inference_mode():
            for b in range(0, len(queries), self.batch):
                q = torch.from_numpy(np.ascontiguousarray(queries[b : b + self.batch], dtype=np.float32))
                q = q.to(self.device, self.dtype)
                best_s = best_i = None
                for start in range(0, self.ntotal, self.chunk):
                    s = q @ self.x[start : start + self.chunk].T
                    top_s, top_i = torch.topk(s, min(k, s.shape[1]), dim=1)
                    top_i = top_i + start
                    if best_s is not None:
                        top_s, pos = torch.topk(torch.cat([best_s, top_s], 1), k, dim=1)
                        top_i = torch.gather(torch.cat([best_i, top_i], 1), 1, pos)
                    best_s, best_i = top_s, top_i
                out_s.append(best_s.float().cpu().numpy())
                out_i.append(best_i.cpu().numpy())
        return np.concatenate(out_s), self.ids[np.concatenate(out_i)]


def to_gpu_if_available(index):
    """The same index on the GPU when there is one, else unchanged: faiss's GPU build when it is installed and
    sees a GPU, else torch exact search (`TorchFlatSearch`) for an exact index on a CUDA device.

    faiss-gpu imports on machines without a GPU but then returns an empty index from
    `index_cpu_to_all_gpus`, so the GPU count is checked first and the copy's size after.
    """
    faiss = _faiss()
    if not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() <= 0:
        return _torch_gpu(index)
    try:
        gpu = faiss.index_cpu_to_all_gpus(index)
    except Exception:  # an index type without a GPU implementation (e.g. HNSW)
        return index
    return gpu if gpu.ntotal == index.ntotal else index


def _torch_gpu(index):
    """An exact index as `TorchFlatSearch` on CUDA (when torch sees a GPU), else the index unchanged.

    Only where torch is already imported (a torch head is loaded): importing it just to ask costs a searcher
    ~500 MB and a second, and a machine with a GPU runs torch heads.
    """
    import sys

    torch = sys.modules.get("torch")
    cuda = bool(torch is not None and torch.cuda.is_available())
    if not cuda or index.ntotal == 0 or not _is_exact(index):
        return index
    return torch_search_of(index, "cuda")


def torch_search_of(index, device: str) -> TorchFlatSearch:
    """The vectors and ids of an exact (ID-mapped flat) FAISS index as a `TorchFlatSearch` on `device`."""
    faiss = _faiss()
    inner = faiss.downcast_index(index.index)
    vectors = faiss.rev_swig_ptr(inner.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d)
    ids = faiss.vector_to_array(faiss.downcast_index(index).id_map)
    return TorchFlatSearch(vectors, ids, device=device)


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by cosine: `(scores (Q, k) float32, ids (Q, k) int64)`, id -1 where fewer than k exist."""
    k = max(1, min(int(k), max(index.ntotal, 1)))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
