"""The benchmark protocol: time windows with no overlap, GAUC's two weightings by hand, early stopping."""
import numpy as np
import pytest

from tfrec.benchmark.protocol import Budget, budget, time_windows
from tfrec.metrics import ctr_metrics, gauc


def plan(**changes):
    base = dict(name="t", train_examples=None, valid_fraction=0.25, test_examples=None, max_epochs=1, patience=1,
                learning_rates=(1e-3,), seeds=(0,))
    return Budget(**{**base, **changes})


def split(times, start, end):
    times = np.asarray(times)
    keep = np.ones(len(times), bool)
    if start is not None:
        keep &= times >= start
    if end is not None:
        keep &= times < end
    return times[keep]


def test_windows_hand_computed_with_ties():
    train = [1, 2, 3, 4, 5, 6, 7, 7, 8, 9, 10, 10]  # 12 examples, ties at 7 and 10
    test = [10, 11, 11, 12, 13]  # the data's split put a second (10) on both sides
    w = time_windows(train, test, plan(train_examples=8, test_examples=3))
    # training requests at the first test second (10, 10) are dropped: 10 left; cap 8 -> [3 .. 9]
    # validation = round(0.25 * 8) = 2 latest -> from 8 on; train [3, 8); test the first 3 -> ends at 12
    assert (w.train_start, w.valid_start, w.test_start, w.test_end) == (3, 8, 10, 12)
    assert (w.n_train, w.n_valid, w.n_test) == (6, 2, 3)
    tr, va, te = split(train, w.train_start, w.valid_start), split(train, w.valid_start, w.test_start), split(
        test, None, w.test_end)
    assert tr.tolist() == [3, 4, 5, 6, 7, 7] and va.tolist() == [8, 9] and te.tolist() == [10, 11, 11]


def test_validation_boundary_never_splits_a_second():
    train = [1, 2, 3, 3, 3, 3]
    w = time_windows(train, [9], plan(valid_fraction=0.2))  # 1 example's share, but the second 3 holds 4
    assert w.valid_start == 3 and (w.n_train, w.n_valid) == (2, 4)


@pytest.mark.parametrize("seed", range(20))
def test_windows_never_overlap(seed):
    rng = np.random.default_rng(seed)
    train = rng.integers(0, 500, rng.integers(20, 400))
    test = rng.integers(int(np.quantile(train, 0.8)), 700, rng.integers(5, 200))  # may share seconds with train
    name = ["smoke", "grid", "full"][seed % 3]
    caps = dict(train_examples=int(rng.integers(10, 300)), test_examples=int(rng.integers(3, 150)))
    w = time_windows(train, test, budget(name, **caps) if name != "full" else budget(name))
    tr = split(train, w.train_start, w.valid_start)
    va = split(train, w.valid_start, w.test_start)
    te = split(test, None, w.test_end)
    assert len(tr) == w.n_train > 0 and len(va) == w.n_valid > 0 and len(te) == w.n_test > 0
    assert tr.max() < va.min() and va.max() < te.min()  # strictly ordered in time: no shared second


def test_windows_refuse_an_empty_split():
    with pytest.raises(ValueError, match="training split"):
        time_windows([], [1], plan())
    with pytest.raises(ValueError, match="no training example"):
        time_windows([5, 5, 5], [9], plan())


def test_unknown_budget_is_named():
    with pytest.raises(ValueError, match="unknown budget 'huge'"):
        budget("huge")


def test_gauc_both_weightings_by_hand():
    #  user 1: labels 1 0 0, scores .9 .5 .1 -> AUC 1;  user 2: labels 1 0, scores .2 .8 -> AUC 0
    #  user 3: all negative -> skipped by both weightings
    users = [1, 1, 1, 2, 2, 3, 3]
    labels = [1, 0, 0, 1, 0, 0, 0]
    scores = [.9, .5, .1, .2, .8, .3, .4]
    weighted = gauc(users, labels, scores)
    assert weighted.value == pytest.approx((3 * 1.0 + 2 * 0.0) / 5)  # 0.6: impressions weigh
    assert gauc(users, labels, scores, weighting="users").value == pytest.approx(0.5)  # plain mean
    assert (weighted.n_users_used, weighted.n_users_skipped) == (2, 1)
    out = ctr_metrics(users, labels, scores)
    assert out["gauc"] == pytest.approx(0.6) and out["gauc_unweighted"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="weighting"):
        gauc(users, labels, scores, weighting="clicks")
