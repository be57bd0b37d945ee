"""The range-search core against brute force, and that it never builds an N x N matrix."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.curate.pairs import group_codes, similar_pairs


def _unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    x[n // 2 :] = x[: n - n // 2] + 0.3 * x[n // 2 :]  # plenty of close pairs
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute(x: np.ndarray, t: float, g: np.ndarray | None, mask: str) -> set[tuple[int, int]]:
    s = x @ x.T
    i, j = np.nonzero(np.triu(s > t, k=1))
    keep = np.ones(len(i), bool)
    if mask == "different":
        keep = g[i] != g[j]
    elif mask == "same":
        keep = g[i] == g[j]
    return set(zip(i[keep].tolist(), j[keep].tolist()))


@pytest.mark.parametrize("mask", ["all", "different", "same"])
@pytest.mark.parametrize("batch", [7, 4096])
def test_matches_brute_force(mask, batch):
    x = _unit(300, 16)
    g = np.random.default_rng(1).integers(0, 20, 300)
    i, j, s = similar_pairs(x, 0.5, g, mask, batch=batch)
    assert set(zip(i.tolist(), j.tolist())) == _brute(x, 0.5, g, mask)
    assert (i < j).all() and (s > 0.5).all()
    np.testing.assert_allclose(s, np.einsum("ij,ij->i", x[i], x[j]), atol=1e-5)
    assert np.all(np.diff(i) >= 0)


def test_unknown_groups_pair_with_nothing_and_edge_cases():
    x = _unit(50, 8)
    g = np.full(50, -1)
    assert len(similar_pairs(x, 0.0, g, "different")[0]) == 0
    assert len(similar_pairs(x[:1], 0.0)[0]) == 0
    with pytest.raises(ValueError):
        similar_pairs(x, 0.5, None, "same")
    codes, names = group_codes(["b", None, "a", "b"])
    assert codes.tolist() == [1, -1, 0, 1] and names == ["a", "b"]


def test_never_an_n_by_n_matrix(monkeypatch):
    """Memory is O(N d + hits): no array anywhere near N x N is allocated (N = 20,000)."""
    n, d = 20_000, 32
    x = _unit(n, d, seed=3)
    big = []
    real_zeros, real_empty = np.zeros, np.empty

    def watch(fn):
        def wrapped(shape, *a, **k):
            size = int(np.prod(shape))
            if size >= n * n // 10:
                big.append(shape)
            return fn(shape, *a, **k)

        return wrapped

    monkeypatch.setattr(np, "zeros", watch(real_zeros))
    monkeypatch.setattr(np, "empty", watch(real_empty))
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    i, _, _ = similar_pairs(x, 0.9, batch=1024)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert not big
    assert grown_mb < n * n * 4 / 2**20 / 10  # far below the 1.5 GB an N x N float32 matrix takes
    assert len(i) >= 0.95 * n // 2  # the planted near pairs are found
