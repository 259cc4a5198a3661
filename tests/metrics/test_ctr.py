"""Tests for tfrec.metrics.ctr against hand-computed values and brute-force references."""
import math

import numpy as np
import pytest

from tfrec.metrics import GAUCResult, auc, ctr_metrics, gauc, logloss


def _pairwise_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """O(n^2) reference: fraction of (positive, negative) pairs ordered right, ties 1/2."""
    pos = scores[labels == 1][:, None]
    neg = scores[labels == 0][None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def test_auc_hand_computed():
    # Positives score 0.9 and 0.3, negatives 0.8 and 0.1. The 4 (pos, neg) pairs:
    #   (0.9, 0.8) right, (0.9, 0.1) right, (0.3, 0.8) wrong, (0.3, 0.1) right -> 3/4.
    assert auc([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1]) == pytest.approx(0.75)


def test_auc_ties_count_half():
    # Positives 0.5 and 0.7, negatives 0.5 and 0.2:
    #   (0.5, 0.5) tie 1/2, (0.5, 0.2) 1, (0.7, 0.5) 1, (0.7, 0.2) 1 -> 3.5/4.
    assert auc([1, 0, 1, 0], [0.5, 0.5, 0.7, 0.2]) == pytest.approx(0.875)
    # All scores tied: every pair counts 1/2.
    assert auc([1, 0, 0, 1, 0], [3.0] * 5) == pytest.approx(0.5)


def test_auc_perfect_inverted_and_bool_labels():
    assert auc(np.array([True, False, True]), [2.0, 1.0, 3.0]) == pytest.approx(1.0)
    assert auc([1, 0, 1], [-np.inf, 1.0, 0.0]) == pytest.approx(0.0)


def test_auc_matches_pair_count_on_random_data_with_ties():
    rng = np.random.default_rng(7)
    labels = (rng.random(400) < 0.3).astype(np.int64)
    scores = np.round(rng.random(400) + 0.3 * labels, 1)  # 1 decimal -> many ties
    assert len(np.unique(scores)) < 20
    assert auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores), abs=1e-12)


@pytest.mark.parametrize(
    "labels, scores, match",
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], "only one class"),
        ([0, 0], [0.1, 0.2], "only one class"),
        ([1, 0, 1], [0.1, 0.2], "same length"),
        ([1, 0], [0.1, np.nan], "scores` contains NaN"),
        ([1, np.nan], [0.1, 0.2], "labels` contains NaN"),
        ([1, 2], [0.1, 0.2], "0 or 1"),
        ([], [], "empty"),
        ([[1, 0]], [[0.1, 0.2]], "1-D"),
    ],
)
def test_auc_rejects_bad_input(labels, scores, match):
    with pytest.raises(ValueError, match=match):
        auc(labels, scores)


def test_gauc_hand_computed_two_users_weighted_and_one_skipped():
    # User 10, 3 impressions: positive 0.2 vs negatives 0.4 (wrong), 0.1 (right) -> AUC 1/2.
    # User 20, 5 impressions: positives 0.9, 0.6; negatives 0.6, 0.3, 0.8:
    #   0.9 beats all three -> 3; 0.6 ties 0.6 (1/2), beats 0.3 (1), loses to 0.8 (0) -> 1.5;
    #   AUC = 4.5 / 6 = 0.75.
    # User 30, 2 impressions, no click -> skipped.
    # GAUC = (3 * 0.5 + 5 * 0.75) / (3 + 5) = 5.25 / 8 = 0.65625 (unweighted mean: 0.625).
    rows = [  # (user, label, score), users interleaved
        (20, 1, 0.9), (10, 1, 0.2), (30, 0, 0.5), (20, 0, 0.6), (10, 0, 0.4),
        (20, 1, 0.6), (20, 0, 0.3), (30, 0, 0.7), (10, 0, 0.1), (20, 0, 0.8),
    ]  # fmt: skip
    users, labels, scores = map(np.array, zip(*rows))
    result = gauc(users, labels, scores)
    assert isinstance(result, GAUCResult)
    assert result.value == pytest.approx(0.65625)
    assert result.n_users_used == 2
    assert result.n_users_skipped == 1
    assert result.n_impressions_used == 8
    # String user ids give the same answer.
    as_strings = gauc(np.array([f"u{u}" for u in users]), labels, scores)
    assert as_strings == result


def test_gauc_matches_per_user_loop_on_random_data():
    rng = np.random.default_rng(3)
    n = 3000
    users = rng.integers(0, 200, n)
    labels = (rng.random(n) < 0.2).astype(np.int64)
    scores = np.round(rng.random(n), 1)  # ties within users
    num = den = 0.0
    used = 0
    for u in np.unique(users):
        mask = users == u
        if 0 < labels[mask].sum() < mask.sum():
            num += mask.sum() * _pairwise_auc(labels[mask], scores[mask])
            den += mask.sum()
            used += 1
    result = gauc(users, labels, scores)
    assert result.value == pytest.approx(num / den, abs=1e-12)
    assert result.n_users_used == used
    assert result.n_users_used + result.n_users_skipped == len(np.unique(users))
    assert result.n_impressions_used == den


def test_gauc_nan_when_no_user_has_both_classes():
    result = gauc([1, 2], [1, 0], [0.3, 0.4])
    assert math.isnan(result.value)
    assert result[1:] == (0, 2, 0)


def test_gauc_rejects_length_mismatch():
    with pytest.raises(ValueError, match="same length"):
        gauc([1, 2], [1, 0, 1], [0.3, 0.4, 0.5])


def test_logloss_hand_computed():
    # -(ln 0.8 + ln(1 - 0.4)) / 2 = (0.2231435513 + 0.5108256238) / 2
    assert logloss([1, 0], [0.8, 0.4]) == pytest.approx(0.3669845875)


def test_logloss_clips():
    # Label 1 at p=0 costs -ln(1e-7) = 16.1180956510; label 0 at p=0 costs -ln(1 - 1e-7).
    expected = (16.1180956510 + 1.00000005e-7) / 2
    assert logloss([1, 0], [0.0, 0.0]) == pytest.approx(expected, rel=1e-9)
    assert logloss([1, 0], [0.0, 0.0], eps=1e-3) == pytest.approx(
        -(math.log(1e-3) + math.log(1 - 1e-3)) / 2
    )


@pytest.mark.parametrize(
    "probs, eps, match",
    [([0.5, 1.5], 1e-7, r"\[0, 1\]"), ([0.5, np.nan], 1e-7, "NaN"), ([0.5, 0.5], 0.0, "eps")],
)
def test_logloss_rejects_bad_input(probs, eps, match):
    with pytest.raises(ValueError, match=match):
        logloss([1, 0], probs, eps=eps)


def test_ctr_metrics_keys_and_values():
    users = [1, 1, 2, 2, 3]
    labels = [1, 0, 0, 1, 1]
    probs = [0.9, 0.2, 0.6, 0.4, 0.7]
    out = ctr_metrics(users, labels, probs)
    assert set(out) == {"auc", "gauc", "gauc_unweighted", "logloss", "n_examples", "n_users", "n_users_gauc"}
    # Pairs (pos 0.9, 0.4, 0.7) x (neg 0.2, 0.6): 0.9 -> 2, 0.4 -> 1, 0.7 -> 2; 5/6.
    assert out["auc"] == pytest.approx(5 / 6)
    # User 1 AUC 1 (2 imps), user 2 AUC 0 (2 imps), user 3 single class -> 2/4.
    assert out["gauc"] == pytest.approx(0.5)
    assert out["logloss"] == pytest.approx(logloss(labels, probs))
    assert (out["n_examples"], out["n_users"], out["n_users_gauc"]) == (5, 3, 2)
