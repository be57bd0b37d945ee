"""Same-person thresholds from every pair of a labelled photo set, and how well they verify held-out pairs.

LFW View 2's own 3,000 different-person pairs cannot set a threshold at a false match rate of 1e-4 (one pair is
3.3e-4). Every pair of its 7,701 photos can: about 29.6 million different-person pairs (and 8,101 same-person
pairs). `operating_points` sets the threshold for each false match rate on all of them;
`cross_validated_verify` sets it on the photos of nine folds and scores the tenth fold's View 2 pairs with it
(the folds share no person), so the accuracy it reports is on people the threshold never saw.
"""

from __future__ import annotations

import numpy as np

from lookalike.eval.metrics import threshold_at_fmr
from lookalike.heads.calibration import FMRS


def all_pairs(vectors: np.ndarray, identities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine of every pair of distinct rows (upper triangle) and whether the two rows share an identity.

    vectors: `(N, d)` L2-normalised; identities: `(N,)` labels. Returns `(scores (M,) float32, same (M,) bool)`,
    M = N (N - 1) / 2.
    """
    v = np.asarray(vectors, dtype=np.float32)
    ids = np.unique(np.asarray(identities), return_inverse=True)[1]
    iu, ju = np.triu_indices(len(v), k=1)
    scores = (v @ v.T)[iu, ju]  # (N, N) float32: 237 MB for LFW View 2's 7,701 photos
    return scores, ids[iu] == ids[ju]


def operating_points(
    vectors: np.ndarray, identities: np.ndarray, fmrs: tuple[float, ...] = FMRS
) -> dict[float, dict[str, float]]:
    """For each false match rate: `{"threshold", "fmr", "tmr", "different_pairs", "same_pairs"}` over all pairs."""
    scores, same = all_pairs(vectors, identities)
    out = {}
    for f in fmrs:
        op = threshold_at_fmr(scores, same, f)
        out[f] = {**op, "different_pairs": int((~same).sum()), "same_pairs": int(same.sum())}
    return out


def cross_validated_verify(
    vectors: np.ndarray,
    identities: np.ndarray,
    folds: np.ndarray,
    pair_scores: np.ndarray,
    pair_same: np.ndarray,
    pair_folds: np.ndarray,
    fmr: float,
) -> dict:
    """Verify each fold's pairs with the threshold set at `fmr` on the photos of the other folds.

    vectors/identities/folds: the photos (`folds`: the fold each photo's pairs belong to); pair_*: the protocol's
    pairs (score, same, fold). Returns per-fold thresholds and accuracies, their mean and standard deviation, and
    the false and true match rates of the decisions on the held-out pairs.
    """
    thresholds, accuracies = [], []
    decided = np.zeros(len(pair_scores), dtype=bool)
    for k in np.unique(pair_folds):
        rest = folds != k
        t = operating_points(vectors[rest], identities[rest], (fmr,))[fmr]["threshold"]
        held = pair_folds == k
        decision = pair_scores[held] >= t
        decided[held] = decision
        thresholds.append(t)
        accuracies.append(float(np.mean(decision == pair_same[held])))
    acc = np.array(accuracies)
    return {
        "fmr_target": fmr,
        "thresholds": thresholds,
        "accuracies": accuracies,
        "accuracy_mean": float(acc.mean()),
        "accuracy_std": float(acc.std()),
        "fmr_held_out": float(np.mean(decided[~pair_same])),
        "tmr_held_out": float(np.mean(decided[pair_same])),
    }
