"""Verification metrics against numbers worked out by hand (and sklearn on random data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from lookalike.eval.metrics import (
    accuracy_at,
    best_threshold,
    kfold_accuracy,
    roc_auc,
    roc_curve,
    view1,
    view2,
)

# Sorted: 0.1 (neg), 0.35 (pos), 0.4 (neg), 0.8 (pos).
SCORES = [0.1, 0.4, 0.35, 0.8]
LABELS = [0, 0, 1, 1]


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def test_best_threshold_picks_lowest_of_tied_best_midpoints():
    # Candidates and correct counts: -0.9 -> 2, 0.225 -> 3, 0.375 -> 2, 0.6 -> 3, 1.8 -> 2.
    # Two candidates reach 3/4; the lower one wins.
    t = best_threshold(SCORES, LABELS)
    assert t == pytest.approx(0.225)
    assert accuracy_at(SCORES, LABELS, t) == 0.75
    assert accuracy_at(SCORES, LABELS, 0.6) == 0.75
    assert accuracy_at(SCORES, LABELS, 0.375) == 0.5


def test_best_threshold_separable_and_ends():
    assert best_threshold([0.1, 0.2, 0.7, 0.9], [0, 0, 1, 1]) == pytest.approx(0.45)
    # All positive: the lower end (everything "same"); all negative: the upper end.
    assert best_threshold([0.3, 0.6], [1, 1]) == pytest.approx(-0.7)
    assert best_threshold([0.3, 0.6], [0, 0]) == pytest.approx(1.6)
    # All scores equal: "all same" and "all different" both give 1/2; the lower threshold wins.
    assert best_threshold([1.0, 1.0, 1.0, 1.0], [1, 0, 1, 0]) == 0.0
    # Threshold is inclusive: a score equal to it counts as "same".
    assert accuracy_at([2.0, 1.0], [True, False], 2.0) == 1.0


def test_best_threshold_is_deterministic_under_permutation():
    rng = np.random.default_rng(3)
    s = np.round(rng.normal(size=200), 1)
    y = rng.random(200) < 0.5
    p = rng.permutation(200)
    assert best_threshold(s, y) == best_threshold(s[p], y[p])
    # And it is optimal among all candidate thresholds.
    u = np.unique(s)
    cands = np.concatenate([[u[0] - 1], (u[1:] + u[:-1]) / 2, [u[-1] + 1]])
    best = max(accuracy_at(s, y, c) for c in cands)
    assert accuracy_at(s, y, best_threshold(s, y)) == best


def test_roc_auc_by_hand():
    # Positive/negative comparisons: (0.35>0.1) (0.35<0.4) (0.8>0.1) (0.8>0.4) -> 3/4.
    assert roc_auc(SCORES, LABELS) == 0.75
    # Ties count 1/2: pos {0.5, 0.9}, neg {0.5, 0.2}: 0.5 + 1 + 1 + 1 = 3.5 of 4.
    assert roc_auc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]) == 0.875
    assert roc_auc([1.0, 1.0, 1.0, 1.0], [1, 0, 1, 0]) == 0.5
    assert roc_auc([0.1, 0.2, 0.7, 0.9], [0, 0, 1, 1]) == 1.0
    assert roc_auc([0.1, 0.2, 0.7, 0.9], [1, 1, 0, 0]) == 0.0


def test_roc_curve_by_hand():
    fpr, tpr, thr = roc_curve(SCORES, LABELS)
    np.testing.assert_array_equal(thr, [np.inf, 0.8, 0.4, 0.35, 0.1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    assert _trapezoid(tpr, fpr) == pytest.approx(roc_auc(SCORES, LABELS))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_matches_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(500) < 0.4
    s = np.round(rng.normal(size=500) + y * 0.8, 1)  # rounding makes many ties
    assert roc_auc(s, y) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, thr = roc_curve(s, y)
    sk_fpr, sk_tpr, sk_thr = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_array_equal(thr[1:], sk_thr[1:])
    assert _trapezoid(tpr, fpr) == pytest.approx(roc_auc(s, y))


def test_kfold_accuracy_by_hand():
    # fold 0: 2 n, 6 p | fold 1: 3 n, 7 p | fold 2: 5 n, 4 p
    s = [2, 6, 3, 7, 5, 4]
    y = [0, 1, 0, 1, 0, 1]
    f = [0, 0, 1, 1, 2, 2]
    r = kfold_accuracy(s, y, f)
    # fold 0 tested, trained on {3n,4p,5n,7p}: best candidates 3.5 and 6.0 (3/4 each) -> 3.5;
    #   2n right, 6p right -> 1.0
    # fold 1 tested, trained on {2n,4p,5n,6p}: 3.0 and 5.5 tie at 3/4 -> 3.0; 3n wrong (3 >= 3), 7p right
    # fold 2 tested, trained on {2n,3n,6p,7p}: 4.5 (4/4); 5n wrong, 4p wrong -> 0.0
    assert r["folds"] == [0, 1, 2]
    assert r["thresholds"] == [3.5, 3.0, 4.5]
    assert r["accuracies"] == [1.0, 0.5, 0.0]
    assert r["mean"] == pytest.approx(0.5)
    assert r["std"] == pytest.approx(math.sqrt(((0.5) ** 2 + 0 + (0.5) ** 2) / 3))  # population std
    # AUC pooled: pos {6,7,4} vs neg {2,3,5}: 3 + 3 + 2 = 8 of 9.
    assert r["auc"] == pytest.approx(8 / 9)


def test_view2_threshold_from_split_0_only():
    s = [4, 6, 3, 4, 6, 8, 1, 4.5, 5.5, 9]
    y = [0, 1, 0, 1, 1, 1, 0, 1, 0, 1]
    g = [0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    r = view2(s, y, g)
    # Split 0 alone ({4n, 6p}) gives 5.0. Fitting on the test splits would give 3.5 and 7/8 accuracy;
    # with 5.0: split 1 (3n ok, 4p wrong, 6p ok, 8p ok) = 3/4, split 2 (1n ok, 4.5p wrong, 5.5n wrong, 9p ok)
    # = 2/4, pooled 5/8.
    assert r["threshold"] == 5.0
    assert best_threshold(s[2:], y[2:]) == 3.5
    assert accuracy_at(s[2:], y[2:], 3.5) == 0.875
    assert r["accuracy"] == 0.625
    assert r["pairs"] == 8
    assert r["per_split"][1]["accuracy"] == 0.75
    assert r["per_split"][2]["accuracy"] == 0.5
    assert set(r["per_split"]) == {1, 2}
    # AUC pooled over splits 1-2: pos {4,6,8,4.5,9} vs neg {3,1,5.5}: 2+3+3+2+3 = 13 of 15.
    assert r["auc"] == pytest.approx(13 / 15)
    assert r["per_split"][1]["auc"] == 1.0
    assert r["per_split"][2]["auc"] == 0.75


def test_view2_needs_split_0():
    with pytest.raises(ValueError):
        view2([1.0, 2.0], [0, 1], [1, 2])


def test_view1_em_acc_and_sem_by_hand():
    # split 0: 5n 6p | split 1: 2n 8p | split 2: 4p 7n | split 3: 3n 9p
    s = [5, 6, 2, 8, 4, 7, 3, 9]
    y = [0, 1, 0, 1, 1, 0, 0, 1]
    g = [0, 0, 1, 1, 2, 2, 3, 3]
    r = view1(s, y, g)
    # Split 0 is the development split and is never tested: n = 3 test splits, each trained on the rest.
    # test 1, train {3n,4p,5n,6p,7n,9p}: best 4/6 at 3.5 (first) -> 2n ok, 8p ok -> 1.0
    # test 2, train {2n,3n,5n,6p,8p,9p}: 5.5 (6/6) -> 4p wrong, 7n wrong -> 0.0
    # test 3, train {2n,4p,5n,6p,7n,8p}: best 4/6 at 3.0 (first) -> 3n wrong, 9p ok -> 0.5
    assert r["test_splits"] == [1, 2, 3]
    assert r["accuracies"] == [1.0, 0.0, 0.5]
    mu = (1.0 + 0.0 + 0.5) / 3
    sigma = math.sqrt(((1.0 - mu) ** 2 + (0.0 - mu) ** 2 + (0.5 - mu) ** 2) / 3)
    assert r["em_acc"] == pytest.approx(0.5)
    assert r["sigma"] == pytest.approx(sigma)
    assert r["sigma"] == pytest.approx(math.sqrt(1 / 6))
    assert r["sem"] == pytest.approx(math.sqrt(1 / 6) / math.sqrt(3))
    assert r["classifier"] == "threshold"


def test_view1_ten_splits_uses_nine_models():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(10), 40)
    y = np.tile([True, False], 200)
    s = rng.normal(size=400) + y
    r = view1(s, y, g)
    assert r["test_splits"] == list(range(1, 10))
    p = np.array(r["accuracies"])
    assert r["em_acc"] == pytest.approx(p.mean())
    assert r["sem"] == pytest.approx(p.std(ddof=0) / 3.0)
    # Each p_i is the accuracy at a threshold fitted without split i.
    for i, acc in zip(r["test_splits"], p, strict=True):
        t = best_threshold(s[g != i], y[g != i])
        assert acc == accuracy_at(s[g == i], y[g == i], t)


def test_view1_logistic():
    g = np.repeat(np.arange(10), 4)
    y = np.tile([True, True, False, False], 10)
    s = np.where(y, 0.8, 0.2) + np.tile([0.05, -0.05, 0.05, -0.05], 10)
    r = view1(s, y, g, classifier="logistic")
    assert r["classifier"] == "logistic"
    assert r["accuracies"] == [1.0] * 9
    assert r["em_acc"] == 1.0 and r["sem"] == 0.0
    # On noisy data it lands close to the threshold classifier.
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(10), 200)
    y = rng.random(2000) < 0.5
    s = rng.normal(size=2000) + 1.5 * y
    lo = view1(s, y, g, classifier="logistic")["em_acc"]
    th = view1(s, y, g, classifier="threshold")["em_acc"]
    assert abs(lo - th) < 0.03


def test_bad_inputs():
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError):
        best_threshold([0.1, float("nan")], [1, 0])
    with pytest.raises(ValueError):
        accuracy_at([0.1, 0.2, 0.3], [1, 0], 0.5)
    with pytest.raises(ValueError):
        view1([0.1, 0.2], [1, 0], [0, 1], classifier="svm")


def test_threshold_at_fmr_keeps_the_false_matches_under_the_rate():
    from lookalike.eval.metrics import threshold_at_fmr

    rng = np.random.default_rng(0)
    diff = rng.normal(0.1, 0.1, 2000)
    same = rng.normal(0.7, 0.1, 1000)
    s = np.concatenate([same, diff])
    y = np.r_[np.ones(1000, bool), np.zeros(2000, bool)]
    for fmr in (0.0, 0.001, 0.01, 0.1):
        r = threshold_at_fmr(s, y, fmr)
        assert r["fmr"] <= fmr and np.mean(diff >= r["threshold"]) == r["fmr"]
        # the lowest such threshold: one step lower lets one more different pair through
        assert np.sum(diff >= np.nextafter(r["threshold"], -np.inf)) > fmr * 2000 or r["threshold"] <= diff.min()
        assert r["tmr"] == np.mean(same >= r["threshold"])
    assert threshold_at_fmr(s, y, 0.0)["threshold"] > diff.max()
