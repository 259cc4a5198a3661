"""Offline CTR metrics in plain numpy: AUC, GAUC, log loss.

* ``auc``: the rank (Mann-Whitney U) form of the ROC AUC. Tied scores get average ranks, so a
  tie between a positive and a negative counts 1/2.
* ``gauc``: group AUC as defined in DIN (Zhou et al., 2018, "Deep Interest Network for
  Click-Through Rate Prediction", eq. 10): the per-user AUC averaged with weights equal to the
  user's number of impressions (FuxiCTR and MUSE weight the same way); ``weighting="users"`` gives
  the unweighted mean over users instead (what the official DIN code reports). Both skip the users
  whose impressions are all one class.
* ``logloss``: clipped mean binary cross-entropy.
* ``ctr_metrics``: all of them at once, as the dict the evaluation pipeline logs.

Everything is vectorized: one sort for ``auc``, one ``np.lexsort`` for ``gauc`` (about 0.3 s for
1e6 rows on one CPU core).
"""
from __future__ import annotations

from typing import Dict, NamedTuple, Union

import numpy as np

ArrayLike = Union[np.ndarray, list, tuple]


class GAUCResult(NamedTuple):
    """The value of ``gauc`` and what went into it.

    Attributes:
      value: the impression-weighted mean of the per-user AUCs; NaN when no user has both a
        positive and a negative.
      n_users_used: users with both classes (their AUC is defined and counted).
      n_users_skipped: users whose labels are all one class (left out).
      n_impressions_used: total impressions of the used users (the sum of the weights).
    """

    value: float
    n_users_used: int
    n_users_skipped: int
    n_impressions_used: int


def _as_1d(name: str, values: ArrayLike) -> np.ndarray:
    """Returns ``values`` as a 1-D numeric array, or raises ValueError naming ``name``."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D. Received: {name}.shape={array.shape}")
    if array.size == 0:
        raise ValueError(f"`{name}` is empty. Received: {name}.shape={array.shape}")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"`{name}` must be numeric. Received: {name}.dtype={array.dtype}")
    if array.dtype.kind == "f" and np.isnan(array).any():
        raise ValueError(
            f"`{name}` contains NaN ({int(np.isnan(array).sum())} of {array.size} values)."
        )
    return array


def _check_same_length(**arrays: np.ndarray) -> None:
    """Raises ValueError unless all ``arrays`` have the same length."""
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        received = ", ".join(f"len({name})={n}" for name, n in lengths.items())
        raise ValueError(f"Inputs must have the same length. Received: {received}")


def _binary_labels(labels: ArrayLike) -> np.ndarray:
    """Returns ``labels`` (0/1 or bool) as float64, or raises ValueError."""
    array = _as_1d("labels", labels)
    is_binary = (array == 0) | (array == 1)
    if not is_binary.all():
        bad = array[~is_binary][:5]
        raise ValueError(f"`labels` must be 0 or 1. Received values such as {bad.tolist()}")
    return array.astype(np.float64)


def _tie_average_ranks(new_group: np.ndarray) -> np.ndarray:
    """1-based ranks of sorted rows, the rows of one tie run sharing the mean of their ranks.

    Args:
      new_group: bool ``[n]`` over the sorted rows, True where a run of tied rows starts
        (always True at 0).

    Returns:
      float64 ``[n]``: the average of the 1-based positions of each row's tie run.
    """
    n = len(new_group)
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], n)
    # Positions start+1 .. end (1-based) average to (start + end + 1) / 2.
    return np.repeat((starts + ends + 1) / 2.0, ends - starts)


def auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """ROC AUC by ranks (Mann-Whitney U), ties getting average ranks.

    AUC = (R_pos - P (P + 1) / 2) / (P N), with R_pos the sum of the positives' ranks among all
    scores (ascending, 1-based, tied scores sharing the mean of their ranks), P positives and N
    negatives. It equals the fraction of (positive, negative) pairs ordered correctly, a tied
    pair counting 1/2.

    Args:
      labels: ``[n]`` 0/1 (or bool) labels.
      scores: ``[n]`` scores, higher meaning more likely positive; any monotone transform gives
        the same AUC. Infinite scores are allowed.

    Returns:
      The AUC in [0, 1].

    Raises:
      ValueError: if the inputs are not 1-D, are empty, differ in length, contain NaN, if a
        label is not 0/1, or if only one class is present (AUC undefined).
    """
    y = _binary_labels(labels)
    s = _as_1d("scores", scores)
    _check_same_length(labels=y, scores=s)
    n_pos = float(y.sum())
    n_neg = float(len(y) - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            "AUC is undefined when only one class is present. "
            f"Received: {int(n_pos)} positives and {int(n_neg)} negatives"
        )
    order = np.argsort(s, kind="stable")
    s_sorted = s[order]
    new_tie = np.empty(len(s_sorted), dtype=bool)
    new_tie[0] = True
    np.not_equal(s_sorted[1:], s_sorted[:-1], out=new_tie[1:])
    ranks = _tie_average_ranks(new_tie)
    rank_sum_pos = float(np.dot(ranks, y[order]))
    return (rank_sum_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def gauc(user_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike, weighting: str = "impressions") -> GAUCResult:
    """Group AUC over users, weighted by impressions (DIN, Zhou et al. 2018, eq. 10).

    ``weighting="users"``: every used user weighs 1 (the plain mean of the per-user AUCs);
    ``n_impressions_used`` is the same either way.

    GAUC = sum_u w_u AUC_u / sum_u w_u, where AUC_u is ``auc`` on user u's impressions alone
    and w_u is user u's number of impressions in the evaluation set. Users whose labels are all
    one class (only clicks or, usually, no click) have no AUC and are **skipped**: they count
    neither in the numerator nor in the weights. ``GAUCResult`` says how many users and
    impressions were used and how many users were skipped.

    Vectorized: one ``np.lexsort`` by (user, score), then per-user rank sums with
    ``np.bincount``; no Python loop over users.

    Args:
      user_ids: ``[n]`` user id of each impression (integers, or any sortable values).
      labels: ``[n]`` 0/1 (or bool) labels.
      scores: ``[n]`` scores, higher meaning more likely positive.

    Returns:
      A ``GAUCResult``; its ``value`` is NaN when no user has both a positive and a negative.

    Raises:
      ValueError: if the inputs are not 1-D, are empty, differ in length, contain NaN, or if a
        label is not 0/1.
    """
    if weighting not in ("impressions", "users"):
        raise ValueError(f"`weighting` must be 'impressions' or 'users'. Received: {weighting!r}")
    users = np.asarray(user_ids)
    if users.ndim != 1:
        raise ValueError(f"`user_ids` must be 1-D. Received: user_ids.shape={users.shape}")
    y = _binary_labels(labels)
    s = _as_1d("scores", scores)
    _check_same_length(user_ids=users, labels=y, scores=s)
    if users.dtype.kind not in "biu":
        if users.dtype.kind == "f" and np.isnan(users).any():
            raise ValueError("`user_ids` contains NaN.")
        users = np.unique(users, return_inverse=True)[1]

    order = np.lexsort((s, users))  # by user, then score ascending
    u_sorted = users[order]
    s_sorted = s[order]
    y_sorted = y[order]
    n = len(order)

    new_user = np.empty(n, dtype=bool)
    new_user[0] = True
    np.not_equal(u_sorted[1:], u_sorted[:-1], out=new_user[1:])
    new_tie = new_user.copy()
    new_tie[1:] |= s_sorted[1:] != s_sorted[:-1]

    user_index = np.cumsum(new_user) - 1  # [n] -> dense user index 0..U-1
    user_starts = np.flatnonzero(new_user)
    # Tie runs never cross users, so a global average rank minus the user's start offset is
    # the 1-based average rank within the user.
    ranks = _tie_average_ranks(new_tie) - user_starts[user_index]

    n_users = len(user_starts)
    count = np.bincount(user_index, minlength=n_users).astype(np.float64)
    n_pos = np.bincount(user_index, weights=y_sorted, minlength=n_users)
    rank_sum_pos = np.bincount(user_index, weights=ranks * y_sorted, minlength=n_users)
    n_neg = count - n_pos

    used = (n_pos > 0) & (n_neg > 0)
    n_used = int(used.sum())
    if n_used == 0:
        return GAUCResult(float("nan"), 0, n_users, 0)
    p, q = n_pos[used], n_neg[used]
    user_auc = (rank_sum_pos[used] - p * (p + 1) / 2.0) / (p * q)
    weights = count[used]
    value = float(np.dot(weights, user_auc) / weights.sum()) if weighting == "impressions" else float(user_auc.mean())
    return GAUCResult(value, n_used, n_users - n_used, int(weights.sum()))


def logloss(labels: ArrayLike, probs: ArrayLike, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy with probabilities clipped to ``[eps, 1 - eps]``.

    logloss = -mean(y log p + (1 - y) log(1 - p)), computed in float64.

    Args:
      labels: ``[n]`` 0/1 (or bool) labels.
      probs: ``[n]`` predicted probabilities of the positive class, in [0, 1].
      eps: float, default 1e-7. Clipping bound, so a confident wrong prediction costs at most
        -log(eps) (about 16.1) instead of infinity.

    Returns:
      The mean log loss (natural log).

    Raises:
      ValueError: if the inputs are not 1-D, are empty, differ in length, contain NaN, if a
        label is not 0/1, if a probability is outside [0, 1], or if ``eps`` is not in (0, 0.5).
    """
    if not 0.0 < eps < 0.5:
        raise ValueError(f"`eps` must be in (0, 0.5). Received: eps={eps}")
    y = _binary_labels(labels)
    p = _as_1d("probs", probs).astype(np.float64)
    _check_same_length(labels=y, probs=p)
    if (p < 0).any() or (p > 1).any():
        raise ValueError(
            "`probs` must lie in [0, 1]. "
            f"Received: min(probs)={p.min()}, max(probs)={p.max()}"
        )
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def ctr_metrics(
    user_ids: ArrayLike, labels: ArrayLike, probs: ArrayLike
) -> Dict[str, Union[float, int]]:
    """All offline CTR metrics of one evaluation set.

    Args:
      user_ids: ``[n]`` user id of each impression.
      labels: ``[n]`` 0/1 (or bool) labels.
      probs: ``[n]`` predicted click probabilities in [0, 1].

    Returns:
      A dict with ``auc``, ``gauc`` (impression-weighted; NaN when no user has both classes),
      ``gauc_unweighted`` (the plain mean over the same users), ``logloss`` (floats),
      ``n_examples`` (impressions), ``n_users`` (distinct users) and ``n_users_gauc`` (users
      with both classes, the ones GAUC averages over).

    Raises:
      ValueError: as ``auc``, ``gauc`` and ``logloss`` do; in particular when the whole set has
        only one class.
    """
    grouped = gauc(user_ids, labels, probs)
    return {
        "auc": auc(labels, probs),
        "gauc": grouped.value,
        "gauc_unweighted": gauc(user_ids, labels, probs, weighting="users").value,
        "logloss": logloss(labels, probs),
        "n_examples": int(np.asarray(labels).shape[0]),
        "n_users": grouped.n_users_used + grouped.n_users_skipped,
        "n_users_gauc": grouped.n_users_used,
    }
