"""Face-verification metrics: thresholds, accuracy, ROC, LFW k-fold and the DoppelVer views (seed 003).

Conventions used throughout:

- ``scores`` is a 1-D float array of shape ``(n,)``: one similarity per pair, higher = more likely the
  same person (negate distances before calling).
- ``labels`` is a 1-D array of shape ``(n,)``: truthy (``1``/``True``) for a same-person pair.
- A pair is predicted "same" when ``score >= threshold``.
- ``folds`` / ``splits`` is a 1-D int array of shape ``(n,)`` naming each pair's fold (LFW) or split
  (DoppelVer, 0-9).
- Accuracies are fractions in [0, 1], never percentages; SEM and std are in the same units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

__all__ = [
    "accuracy_at",
    "best_threshold",
    "kfold_accuracy",
    "roc_auc",
    "roc_curve",
    "threshold_at_fmr",
    "view1",
    "view2",
]


def _check(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert to ``(float64 (n,), bool (n,))``; n >= 1, all scores finite."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or y.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"scores and labels must be 1-D of equal length, got {s.shape} and {y.shape}")
    if s.size == 0:
        raise ValueError("no pairs to evaluate")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinity")
    if y.dtype != bool:
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("labels must be 0/1 or boolean")
        y = y.astype(bool)
    return s, y


def _check_groups(groups: Any, n: int, what: str) -> np.ndarray:
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},), got {g.shape}")
    if not np.issubdtype(g.dtype, np.integer):
        raise ValueError(f"{what} must be integers")
    return g.astype(np.int64)


def _best_threshold(s: np.ndarray, y: np.ndarray) -> float:
    u, inverse = np.unique(s, return_inverse=True)  # sorted unique scores, shape (m,)
    m = u.size
    pos_per = np.bincount(inverse, weights=y.astype(np.float64), minlength=m)
    neg_per = np.bincount(inverse, weights=(~y).astype(np.float64), minlength=m)
    # Candidate i in 0..m predicts "same" for exactly the scores u[i:], so
    # correct(i) = positives with score >= u[i] + negatives with score < u[i].
    pos_at_or_above = np.concatenate([np.cumsum(pos_per[::-1])[::-1], [0.0]])  # (m+1,)
    neg_below = np.concatenate([[0.0], np.cumsum(neg_per)])  # (m+1,)
    correct = pos_at_or_above + neg_below
    # Ties: the first (i.e. lowest) threshold reaching the maximum wins, so the choice is deterministic.
    i = int(np.argmax(correct))
    if i == 0:
        return float(u[0] - 1.0)
    if i == m:
        return float(u[-1] + 1.0)
    t = (u[i - 1] + u[i]) / 2.0
    if not (u[i - 1] < t <= u[i]):  # adjacent floats: the midpoint rounds onto u[i-1]
        t = u[i]
    return float(t)


def best_threshold(scores: Any, labels: Any) -> float:
    """The threshold that maximises accuracy on the given pairs (predict same when ``score >= t``).

    Args:
        scores: similarities, shape ``(n,)``.
        labels: same-person flags, shape ``(n,)``.

    Returns:
        One of the candidates: the midpoints between consecutive sorted unique scores, or the two ends
        ``min(scores) - 1`` (everything "same") and ``max(scores) + 1`` (everything "different").
        When several candidates reach the same best accuracy, the lowest of them is returned.
    """
    s, y = _check(scores, labels)
    return _best_threshold(s, y)


def accuracy_at(scores: Any, labels: Any, threshold: float) -> float:
    """Fraction of pairs classified correctly when "same" means ``score >= threshold``.

    Args:
        scores: similarities, shape ``(n,)``.
        labels: same-person flags, shape ``(n,)``.
        threshold: the decision threshold.
    """
    s, y = _check(scores, labels)
    return float(np.mean((s >= threshold) == y))


def roc_auc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve (scikit-learn's `roc_auc_score`): P(a random positive outscores a random
    negative), a tie counting 1/2.

    Args:
        scores: similarities, shape ``(n,)``.
        labels: same-person flags, shape ``(n,)``; both classes must be present.
    """
    from sklearn.metrics import roc_auc_score

    s, y = _check(scores, labels)
    if y.all() or not y.any():
        raise ValueError("ROC AUC needs at least one positive and one negative pair")
    return float(roc_auc_score(y, s))


def roc_curve(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The full ROC curve (scikit-learn's `roc_curve`, no points dropped).

    Args:
        scores: similarities, shape ``(n,)``.
        labels: same-person flags, shape ``(n,)``; both classes must be present.

    Returns:
        ``(fpr, tpr, thresholds)``, each of shape ``(m + 1,)`` for m unique scores. ``thresholds`` is
        ``[inf, u_max, ..., u_min]`` (decreasing) and point k is the operating point of predicting "same"
        for ``score >= thresholds[k]``; so it starts at (0, 0) and ends at (1, 1).
    """
    from sklearn.metrics import roc_curve as sk_roc_curve

    s, y = _check(scores, labels)
    if y.all() or not y.any():
        raise ValueError("ROC curve needs at least one positive and one negative pair")
    fpr, tpr, thresholds = sk_roc_curve(y, s, drop_intermediate=False)
    return fpr, tpr, thresholds


def kfold_accuracy(scores: Any, labels: Any, folds: Any) -> dict[str, Any]:
    """LFW-style k-fold accuracy: each fold is scored with a threshold fitted on all the other folds.

    Args:
        scores: similarities, shape ``(n,)``.
        labels: same-person flags, shape ``(n,)``.
        folds: fold id per pair, shape ``(n,)``; at least two distinct folds.

    Returns:
        ``{"folds": [f, ...], "accuracies": [acc_f, ...], "thresholds": [t_f, ...], "mean": float,
        "std": float, "auc": float, "correct": bool array (n,)}`` (``correct``: each pair judged right at its
        fold's threshold, for paired comparisons of two scorings). ``std`` is the population standard deviation
        (ddof=0, divide by the number of folds), as most published LFW "mean +- std" numbers use (``np.std``). Note that
        LFW's own README defines its standard error with ``n - 1``; use ``std * sqrt(k / (k - 1))`` to
        get that sample estimate. ``auc`` is the ROC AUC over all pairs pooled (no threshold needed).
    """
    s, y = _check(scores, labels)
    f = _check_groups(folds, s.size, "folds")
    fold_ids = np.unique(f)
    if fold_ids.size < 2:
        raise ValueError("k-fold accuracy needs at least two folds")
    accs: list[float] = []
    thresholds: list[float] = []
    correct = np.zeros(s.size, dtype=bool)
    for fid in fold_ids:
        test = f == fid
        t = _best_threshold(s[~test], y[~test])
        thresholds.append(t)
        correct[test] = (s[test] >= t) == y[test]
        accs.append(float(np.mean(correct[test])))
    return {
        "folds": [int(x) for x in fold_ids],
        "accuracies": accs,
        "thresholds": thresholds,
        "mean": float(np.mean(accs)),
        "std": float(np.std(accs, ddof=0)),
        "auc": roc_auc(s, y),
        "correct": correct,
    }


def _auc_or_none(s: np.ndarray, y: np.ndarray) -> float | None:
    return roc_auc(s, y) if 0 < int(y.sum()) < y.size else None


def view2(scores: Any, labels: Any, splits: Any) -> dict[str, Any]:
    """DoppelVer View 2: the threshold is chosen on split 0 only; ACC and ROC AUC on the other splits.

    Args:
        scores: similarities, shape ``(n,)``.
        labels: same-person flags, shape ``(n,)``.
        splits: split id per pair (0-9), shape ``(n,)``; split 0 and at least one other must be present.

    Returns:
        ``{"threshold": t, "accuracy": acc, "auc": auc, "pairs": n_test, "per_split": {k: {"pairs",
        "accuracy", "auc"}}}`` where ``accuracy`` / ``auc`` pool every pair of the splits other than 0
        (splits 1-9) and ``per_split`` gives each test split alone (``auc`` None if it holds one class).
    """
    s, y = _check(scores, labels)
    g = _check_groups(splits, s.size, "splits")
    dev = g == 0
    if not dev.any():
        raise ValueError("View 2 needs split 0 to choose the threshold")
    if dev.all():
        raise ValueError("View 2 needs at least one test split besides split 0")
    t = _best_threshold(s[dev], y[dev])
    test = ~dev
    per_split: dict[int, dict[str, Any]] = {}
    for k in np.unique(g[test]):
        m = g == k
        per_split[int(k)] = {
            "pairs": int(m.sum()),
            "accuracy": float(np.mean((s[m] >= t) == y[m])),
            "auc": _auc_or_none(s[m], y[m]),
        }
    return {
        "threshold": t,
        "accuracy": float(np.mean((s[test] >= t) == y[test])),
        "auc": roc_auc(s[test], y[test]),
        "pairs": int(test.sum()),
        "per_split": per_split,
    }


def _fit_logistic(s: np.ndarray, y: np.ndarray):
    """A logistic regression on the standardised score; returns a predict(scores) -> bool callable."""
    from sklearn.linear_model import LogisticRegression

    if y.all() or not y.any():
        raise ValueError("logistic regression needs both classes in the training splits")
    mu = float(s.mean())
    sd = float(s.std()) or 1.0
    model = LogisticRegression(C=1e4, max_iter=1000)
    model.fit(((s - mu) / sd)[:, None], y)

    def predict(x: np.ndarray) -> np.ndarray:
        return model.predict(((x - mu) / sd)[:, None]).astype(bool)

    return predict


def view1(
    scores: Any,
    labels: Any,
    splits: Any,
    classifier: Literal["threshold", "logistic"] = "threshold",
    test_splits: Sequence[int] | None = None,
) -> dict[str, Any]:
    """DoppelVer View 1: for each test split, fit on all the other splits, score it; report EM ACC and SEM.

    Args:
        scores: similarities, shape ``(n,)``.
        labels: same-person flags, shape ``(n,)``.
        splits: split id per pair, shape ``(n,)``.
        classifier: ``"threshold"`` (best-accuracy threshold on the training splits) or ``"logistic"``
            (a logistic regression on the score, fitted on the training splits).
        test_splits: which splits are tested, each once. Default: every split present except split 0.

    Returns:
        ``{"classifier", "test_splits": [i, ...], "accuracies": [p_i, ...], "em_acc": mu_hat,
        "sigma": sigma_hat, "sem": SEM}`` with, over the n test splits (seed 003, section 7.3.4)::

            mu_hat = sum(p_i) / n,  sigma_hat = sqrt(sum((p_i - mu_hat)^2) / n),  SEM = sigma_hat / sqrt(n)

        (sigma_hat divides by n, not n - 1, exactly as the seed writes it). p_i are fractions, not %.
    """
    # Which splits count (seed 003, 7.3.4): classifiers are "trained ... on nine splits and evaluated on the
    # tenth" and "performance should be recorded as an average across the 9 models"; the EM ACC / SEM
    # equations sum i = 1..9 and divide by 9. Split 0 is the development split ("use split 0 for algorithm
    # development and validation"), so it is never a test split; the 9 models test splits 1-9 in turn, each
    # trained on the nine others, split 0 included. Hence n = number of test splits = 9 for a 10-split
    # protocol, and the default here is "every split but 0" (n = k - 1 for k splits).
    s, y = _check(scores, labels)
    g = _check_groups(splits, s.size, "splits")
    present = np.unique(g)
    if test_splits is None:
        chosen = [int(k) for k in present if k != 0]
    else:
        chosen = [int(k) for k in test_splits]
        missing = sorted(set(chosen) - {int(k) for k in present})
        if missing:
            raise ValueError(f"test splits {missing} hold no pairs")
    if not chosen:
        raise ValueError("View 1 needs at least one test split")
    if classifier not in ("threshold", "logistic"):
        raise ValueError(f"unknown classifier {classifier!r}: use 'threshold' or 'logistic'")
    accs: list[float] = []
    for k in chosen:
        test = g == k
        train = ~test
        if not train.any():
            raise ValueError(f"no training splits left when testing split {k}")
        if classifier == "threshold":
            t = _best_threshold(s[train], y[train])
            pred = s[test] >= t
        else:
            pred = _fit_logistic(s[train], y[train])(s[test])
        accs.append(float(np.mean(pred == y[test])))
    n = len(accs)
    mu = sum(accs) / n
    sigma = math.sqrt(sum((p - mu) ** 2 for p in accs) / n)
    return {
        "classifier": classifier,
        "test_splits": chosen,
        "accuracies": accs,
        "em_acc": mu,
        "sigma": sigma,
        "sem": sigma / math.sqrt(n),
    }


def threshold_at_fmr(scores: Any, labels: Any, fmr: float) -> dict[str, float]:
    """The lowest score threshold at which at most `fmr` of the different pairs (label 0) score at or above it.

    Returns ``{"threshold", "fmr", "tmr"}``: the threshold, and the false and true match rates measured there
    (with n different pairs the rate moves in steps of 1/n, so the measured one may be below `fmr`).
    """
    s, y = _check(scores, labels)
    neg = np.sort(s[~y])[::-1]
    if neg.size == 0 or not y.any():
        raise ValueError("threshold_at_fmr needs same and different pairs")
    allowed = math.floor(fmr * neg.size + 1e-9)  # different pairs allowed at or above the threshold
    if allowed >= neg.size:
        t = float(neg[-1])
    else:
        t = float(np.nextafter(neg[allowed], np.inf))  # just above the first different pair not allowed
    return {
        "threshold": t,
        "fmr": float(np.mean(s[~y] >= t)),
        "tmr": float(np.mean(s[y] >= t)),
    }
