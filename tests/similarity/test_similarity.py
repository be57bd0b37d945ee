"""Similarity metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lookalike.eval.similarity import ndcg, retrieval_table, retrieval_topk, top_ranked_precision, triplet_accuracy


def test_triplet_accuracy_counts_strictly_closer_positives():
    assert triplet_accuracy([0.1, 0.5, 0.3, 0.2], [0.2, 0.4, 0.3, 0.9]) == 0.5  # tie counts as wrong
    with pytest.raises(ValueError):
        triplet_accuracy([0.1], [0.1, 0.2])


def test_top_ranked_precision():
    p = top_ranked_precision([1, 3, 2, 6], k_max=6)
    assert p == {1: 0.25, 2: 0.5, 3: 0.75, 4: 0.75, 5: 0.75, 6: 1.0}


def test_ndcg_by_hand():
    assert ndcg([0, 1, 2, 3, 4, 5]) == pytest.approx(1.0)
    # model swaps the first two: rel = [5, 6, 4, 3, 2, 1]
    rel = [5, 6, 4, 3, 2, 1]
    dcg = sum((2**r - 1) / math.log2(i + 2) for i, r in enumerate(rel))
    odcg = sum((2**r - 1) / math.log2(i + 2) for i, r in enumerate(sorted(rel, reverse=True)))
    assert ndcg([1, 0, 2, 3, 4, 5]) == pytest.approx(dcg / odcg)
    assert ndcg([1, 0, 2, 3, 4, 5]) == pytest.approx(0.8752, abs=1e-3)  # 82.78 / 94.59


def test_retrieval_topk_perfect_and_known_rank():
    eye = np.eye(20)
    assert retrieval_topk(eye, eye, m=10) == {1: 1.0, 2: 1.0, 5: 1.0}
    # every reference is the same point except anchor 0's match, which is farther than any distractor
    a = np.zeros((10, 2))
    a[:, 0] = 1
    r = np.tile([[1.0, 0.0]], (10, 1))
    r[0] = [0.0, 1.0]
    res = retrieval_topk(a, r, m=10)  # anchor 0: rank 9 (miss everywhere); others: ties -> hit
    assert res == {1: 0.9, 2: 0.9, 5: 0.9}
    assert set(retrieval_table(eye, eye)) == {10, 20}  # m = 60 needs 60 pairs
