"""The vector index at scale, on synthetic clustered vectors (the sizes `auto` switches at are too large for a unit
test, so the switch point is lowered): exact below it, a tuned IVF above it with its recall measured and met,
additions patched in until the vectors double, then retrained; torch exact search equal to FAISS."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.index import vector_index as vi


def _clustered(n: int, d: int = 32, centres: int = 2000, seed: int = 0, noise: float = 0.35) -> np.ndarray:
    """People (centres) with several photos each (noisy copies), L2-normalised: the shape of face vectors."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, d)).astype(np.float32)
    v = c[rng.integers(0, centres, n)] + rng.normal(0, noise, (n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _recall(index, vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    exact = vi.build_index(vectors, ids, "Flat")
    _, truth = exact.search(queries, k)
    _, got = index.search(queries, k)
    return float(np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(got, truth, strict=True)]))


def test_auto_is_exact_on_a_small_set():
    v = _clustered(3_000)
    index, state = vi.update_index(None, v, np.arange(len(v)), vi.AUTO)
    assert state == {"factory": "Flat", "trained_on": 0} and vi._is_exact(index)
    assert vi.active_description(index, vi.AUTO, len(v), state) == "Flat (auto for 3,000 vectors)"


def test_auto_above_the_switch_trains_tunes_and_meets_its_recall(monkeypatch):
    monkeypatch.setattr(vi, "EXACT_UP_TO", 5_000)
    v = _clustered(25_000)
    ids = np.arange(len(v), dtype=np.int64) * 7  # ids need not be positions
    index, state = vi.update_index(None, v, ids, vi.AUTO)
    assert state["factory"] == vi.auto_factory(len(v)) == "IVF512,SQ8" and state["trained_on"] == len(v)
    tuning = state["tuning"]
    assert tuning["param"] == "nprobe" and tuning["recall"] >= vi.TARGET_RECALL and tuning["value"] < 512
    # on other queries than the ones it was tuned on, the recall holds
    rng = np.random.default_rng(1)
    q = v[rng.choice(len(v), 300, replace=False)] + rng.normal(0, 0.02, (300, v.shape[1])).astype(np.float32)
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    assert _recall(index, v, ids, q) >= 0.93
    text = vi.active_description(index, vi.AUTO, len(v), state)
    assert text.startswith("IVF512,SQ8 (auto for 25,000 vectors); nprobe ") and "recall@10 0.9" in text

    # a few more vectors: added to the trained index, not retrained
    more = _clustered(2_000, seed=2)
    v2, ids2 = np.vstack([v, more]), np.concatenate([ids, 1_000_000 + np.arange(len(more))])
    patched, state2 = vi.update_index(index, v2, ids2, vi.AUTO, state)
    assert patched is index and state2 == state and patched.ntotal == len(v2)
    # removed ids leave it too
    kept, state3 = vi.update_index(patched, v2[100:], ids2[100:], vi.AUTO, state2)
    assert kept.ntotal == len(v2) - 100 and state3 == state
    # once the vectors have doubled since training it is trained (and tuned) again
    big = _clustered(52_000, seed=3)
    again, state4 = vi.update_index(kept, big, np.arange(len(big)), vi.AUTO, state3)
    assert again is not kept and state4["trained_on"] == len(big) and state4["factory"] == vi.auto_factory(len(big))


def test_auto_keeps_whole_vectors_when_8_bit_codes_cannot_reach_the_recall(monkeypatch):
    """Many near-identical faces (a few people, many photos each): SQ8 reorders near-ties at any nprobe, so auto
    falls back to an IVF over whole vectors and meets the target there."""
    monkeypatch.setattr(vi, "EXACT_UP_TO", 5_000)
    v = _clustered(25_000, centres=400, noise=0.1)
    index, state = vi.update_index(None, v, np.arange(len(v)), vi.AUTO)
    assert state["factory"] == "IVF512,Flat" and state["sq8_recall"] < vi.TARGET_RECALL
    assert state["tuning"]["recall"] >= vi.TARGET_RECALL
    # the next run's additions go into it: no training again (auto's first choice would still be SQ8)
    more = _clustered(1_000, centres=400, noise=0.1, seed=7)
    v2 = np.vstack([v, more])
    again, state2 = vi.update_index(index, v2, np.arange(len(v2)), vi.AUTO, state)
    assert again is index and state2 == state and again.ntotal == len(v2)


def test_a_store_records_the_choice(tmp_path):
    """Through the index folder: the manifest keeps what serves searches, and a reopened index searches alike."""
    import pyarrow as pa

    from lookalike.index.store import REJECTS_SCHEMA, FaceStore, faces_schema, now_utc

    d, n = 32, 1_000
    v = _clustered(n, d)
    rows = {name: [] for name in faces_schema(d).names}
    for i in range(n):
        for k, val in (("vector_id", i), ("face_id", f"/p/{i}.jpg#0"), ("path", f"/p/{i}.jpg"), ("sha256", f"{i:064x}"),
                       ("file_size", 1), ("mtime_ns", 1), ("face_index", 0), ("is_main", True), ("box", [0.0] * 4),
                       ("landmarks", [0.0] * 10), ("prob", 0.99), ("identity", None), ("head", "test"),
                       ("width", 100), ("height", 100), ("added_at", now_utc()), ("embedding", v[i])):  # fmt: skip
            rows[k].append(val)
    with FaceStore.writer(tmp_path / "ix", "test", d, "x", {"index_factory": "auto"}) as store:
        faces = pa.Table.from_pydict({**rows, "vector_id": [None] * n}, schema=faces_schema(d))
        ids = store.reserve_ids(n)
        store.commit_part(faces.set_column(0, "vector_id", pa.array(ids, pa.int64())), REJECTS_SCHEMA.empty_table())
        store.finalize()
    m = FaceStore.open(tmp_path / "ix").manifest
    assert m["index_factory"] == "auto" and m["index_state"]["factory"] == "Flat"
    assert m["index_active"] == "Flat (auto for 1,000 vectors)"


@pytest.mark.parametrize("n", [1, 999, 5_000])
def test_torch_exact_search_equals_faiss(n):
    v = _clustered(n, 64, centres=50)
    ids = np.arange(n, dtype=np.int64) * 3 + 11
    q = _clustered(37, 64, centres=50, seed=5)
    k = 10
    flat = vi.build_index(v, ids, "Flat")
    want_s, want_i = vi.search(flat, q, k)
    got_s, got_i = vi.TorchFlatSearch(v, ids, device="cpu", chunk=1_000, batch=16).search(q, k)
    via_s, via_i = vi.search(vi.torch_search_of(flat, "cpu"), q, k)  # what a CUDA machine builds, on the CPU
    assert np.array_equal(via_i, got_i) or np.allclose(via_s, got_s, atol=1e-6)
    import torch

    tensor_s, _ = vi.TorchFlatSearch(torch.from_numpy(v), ids, device="cpu", chunk=1_000).search(q, k)
    assert np.allclose(tensor_s, got_s, atol=1e-6)  # vectors given as a tensor (benchmarks/scale_gpu.py)
    assert got_i.shape == want_i.shape == (37, min(k, n))
    assert np.allclose(got_s, want_s, atol=1e-5)
    same = got_i == want_i
    # where two stored vectors score the same to float precision, their order may differ
    assert same.mean() > 0.99 and np.allclose(got_s[~same], want_s[~same], atol=1e-5)


def test_a_searcher_maps_a_large_approximate_index(tmp_path, monkeypatch):
    """An IVF index is searched from a memory map (its lists stay on disk) with the same answers as read whole."""
    import faiss

    from lookalike.index.store import FaceStore

    monkeypatch.setattr(vi, "EXACT_UP_TO", 5_000)
    v = _clustered(25_000)
    index, state = vi.update_index(None, v, np.arange(len(v)), vi.AUTO)
    ix = tmp_path / "ix"
    ix.mkdir()
    faiss.write_index(index, str(ix / "index.faiss"))
    store = FaceStore.__new__(FaceStore)  # only what _read_faiss needs: where, and the manifest
    store.root, store.manifest = ix, {"index_state": state, "dim": v.shape[1]}
    mapped, whole = store._read_faiss(mmap=True), store._read_faiss()
    q = v[:50]
    assert np.array_equal(mapped.search(q, 10)[1], whole.search(q, 10)[1])
    with pytest.raises(RuntimeError):  # a mapped index takes no additions: never used for writing
        mapped.add_with_ids(v[:1], np.array([10**9]))
