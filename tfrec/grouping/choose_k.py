"""Choosing the number of K-means groups from the data: a silhouette sweep over a grid of k.

Why: the grouping must not read the data generator's truth. The synthetic generator knows how
many topics it planted (``dataset.json``'s ``n_topics``), but setting k from it tunes the
grouping on the ground truth, and real catalogs have no such figure. ``choose_k`` picks k from
the embeddings alone.

How: for every candidate k of a geometric grid (``k_grid``), cluster with ``kmeans`` and score
the assignment with the mean silhouette coefficient (Rousseeuw, 1987), the standard internal
(label-free) criterion: a point's silhouette ``s = (b - a) / max(a, b)`` compares ``a``, its mean
distance to the other members of its own cluster, with ``b``, its mean distance to the members
of the nearest other cluster; ``s`` near 1 means tight, well-separated clusters. The exact
coefficient costs O(N^2) distances, so it is computed exactly on a seeded sample of at most
``sample`` items (the same sample for every k, so the scores are comparable). The chosen k has
the highest mean silhouette among the k whose clusters pass the balance check (coefficient of
variation and max/min size, as ``pipelines/cluster.py`` checks them; a few giant groups make
group-wise aggregation pointless), or the highest overall when none passes.

On hierarchical data (categories -> topics -> items) the silhouette picks the level whose
clusters are tightest relative to their separation: usually the finer one (topics) when items
sit close to their topic, since then ``a`` shrinks to the item noise while ``b`` stays the
distance between sibling topics; the coarser level wins only when topics of one category
overlap (spread comparable to their distance).
"""
from __future__ import annotations

import math
from typing import Any, List, NamedTuple, Optional, Sequence

import numpy as np

from tfrec.grouping.kmeans import _check_int, _validate_embeddings, balance_report, kmeans

# Largest default k (the model's group embedding table stays small) and the default items per
# group floor: k_max = min(256, n_items // 10).
_DEFAULT_K_CAP = 256
_DEFAULT_ITEMS_PER_GROUP = 10


class KRow(NamedTuple):
    """One k of a silhouette sweep.

    Attributes:
      k: number of clusters.
      silhouette: mean silhouette coefficient of the K-means assignment on the sample (NaN
        when the sample holds fewer than two clusters).
      cv: coefficient of variation of the cluster sizes (all items).
      max_min_ratio: largest / smallest cluster size (``inf`` with an empty cluster).
      balanced: whether the clustering passes the balance check.
    """

    k: int
    silhouette: float
    cv: float
    max_min_ratio: float
    balanced: bool


class KSelection(NamedTuple):
    """The outcome of ``choose_k``.

    Attributes:
      k: the chosen number of clusters.
      table: one ``KRow`` per candidate k, in increasing k.
    """

    k: int
    table: List[KRow]


def k_grid(n_items: int, k_min: int = 8, k_max: Optional[int] = None, ratio: float = 1.25) -> List[int]:
    """A geometric grid of candidate k: ``round(k_min * ratio**i)`` up to ``k_max``, plus ``k_max``.

    A geometric grid spends its candidates evenly on a log scale, where the silhouette changes
    at a similar rate (splitting 8 groups into 10 changes as much as 80 into 100).

    Args:
      n_items: int >= 2, the number of items to cluster.
      k_min: int >= 2, default 8. The smallest candidate.
      k_max: int or None, default None. The largest candidate, at most ``n_items``; None means
        ``min(256, n_items // 10)`` (about ten items per group at least), raised to ``k_min``
        (and lowered to ``n_items``).
      ratio: float > 1, default 1.25. Growth factor between consecutive candidates.

    Returns:
      Sorted distinct ints from ``k_min`` to ``k_max``, both included.

    Raises:
      ValueError: naming the argument, if one is not an int / number in its range, or
        ``k_min > k_max``, or ``k_min > n_items``.
    """
    n_items = _check_int("n_items", n_items, 2)
    k_min = _check_int("k_min", k_min, 2)
    if k_min > n_items:
        raise ValueError(f"`k_min` must be <= n_items={n_items}. Received: k_min={k_min}")
    if k_max is None:
        k_max = min(n_items, max(k_min, min(_DEFAULT_K_CAP, n_items // _DEFAULT_ITEMS_PER_GROUP)))
    else:
        k_max = _check_int("k_max", k_max, 2)
        if k_max < k_min:
            raise ValueError(f"`k_max` must be >= k_min={k_min}. Received: k_max={k_max}")
        if k_max > n_items:
            raise ValueError(f"`k_max` must be <= n_items={n_items}. Received: k_max={k_max}")
    if (isinstance(ratio, (bool, np.bool_)) or not isinstance(ratio, (int, float, np.integer, np.floating))
            or not math.isfinite(ratio) or ratio <= 1):
        raise ValueError(f"`ratio` must be a finite number > 1. Received: ratio={ratio!r}")
    grid = {k_max}
    value = float(k_min)
    while round(value) < k_max:
        grid.add(round(value))
        value *= ratio
    return sorted(grid)


def _pairwise_distances(x: np.ndarray) -> np.ndarray:
    """float64 ``[M, M]`` Euclidean distances between the rows of ``x`` (zero diagonal)."""
    x = np.asarray(x, dtype=np.float64)
    sq = np.einsum("md,md->m", x, x)
    # ||x - y||^2 = ||x||^2 + ||y||^2 - 2 x.y; [M, D] x [D, M] -> [M, M]
    dist = x @ x.T
    dist *= -2.0
    dist += sq[:, None]
    dist += sq[None, :]
    np.maximum(dist, 0.0, out=dist)
    np.fill_diagonal(dist, 0.0)
    return np.sqrt(dist, out=dist)


def _silhouette_from_distances(dist: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of ``labels`` given the ``[M, M]`` distance matrix; NaN with < 2 clusters."""
    present, inverse = np.unique(labels, return_inverse=True)
    if len(present) < 2:
        return float("nan")
    m = len(labels)
    counts = np.bincount(inverse)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # Column blocks of one cluster each -> [M, C] summed distances to every cluster's members.
    sums = np.add.reduceat(dist[:, order], starts, axis=1)
    rows = np.arange(m)
    own_count = counts[inverse]
    a = sums[rows, inverse] / np.maximum(own_count - 1, 1)
    means = sums / counts[None, :]
    means[rows, inverse] = np.inf
    b = means.min(axis=1)
    denominator = np.maximum(a, b)
    s = np.zeros(m, dtype=np.float64)
    # A point alone in its cluster has s = 0 (Rousseeuw), and so does one with a = b = 0.
    ok = (own_count > 1) & (denominator > 0)
    s[ok] = (b[ok] - a[ok]) / denominator[ok]
    return float(s.mean())


def silhouette_score(embeddings: Any, labels: Any) -> float:
    """The exact mean silhouette coefficient of a labelling (Euclidean distances, numpy only).

    For point i in cluster C: ``a`` = mean distance to the other members of C, ``b`` = the
    smallest mean distance to the members of another cluster, ``s = (b - a) / max(a, b)``;
    ``s = 0`` when C holds only i. Builds the full ``[N, N]`` distance matrix: meant for a few
    thousand rows (``choose_k`` calls it on a sample).

    Args:
      embeddings: ``[N, D]`` finite real array.
      labels: int ``[N]`` cluster of each row (any integer values).

    Returns:
      The mean of ``s`` over the rows; NaN when fewer than two clusters are present.

    Raises:
      ValueError: if the embeddings are invalid or ``labels`` is not 1-D integer of length N.
    """
    x = _validate_embeddings(embeddings)
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != x.shape[0]:
        raise ValueError(
            f"`labels` must be a 1-D integer array of length N={x.shape[0]}. "
            f"Received: labels.shape={labels.shape}, labels.dtype={labels.dtype}"
        )
    return _silhouette_from_distances(_pairwise_distances(x), labels)


def _passes(report: dict, max_cv: Optional[float], max_ratio: Optional[float]) -> bool:
    """The balance check of ``check_balance`` (no empty cluster either), without its warning."""
    if report["n_empty"] > 0:
        return False
    if max_cv is not None and not report["cv"] <= max_cv:
        return False
    return max_ratio is None or report["max_min_ratio"] <= max_ratio


def choose_k(
    embeddings: Any,
    grid: Optional[Sequence[int]] = None,
    seed: int = 0,
    sample: int = 2000,
    n_iter: int = 30,
    batch_size: Optional[int] = None,
    max_cv: Optional[float] = 1.0,
    max_ratio: Optional[float] = 50.0,
) -> KSelection:
    """Chooses the number of K-means groups by a silhouette sweep (see the module docstring).

    For every k of ``grid``: ``kmeans(embeddings, k, seed=seed, n_iter=n_iter,
    batch_size=batch_size)`` on all items, its ``balance_report``, and the exact mean silhouette
    of its assignment on one seeded sample of at most ``sample`` items (the same for every k).
    The choice is the k with the highest silhouette among the balanced ones (ties: the smaller
    k), or among all when none is balanced. Same inputs + same seed -> same choice.

    Args:
      embeddings: ``[N, D]`` finite real array, one row per item (a memmap works with
        ``batch_size``).
      grid: candidate k (ints in ``[2, N]``), or None for ``k_grid(N)``.
      seed: int, default 0. Seed of the sample and of every ``kmeans`` run.
      sample: int >= 2, default 2000. Items the silhouette is computed on (all when fewer).
      n_iter: int, default 30. ``kmeans`` iterations (epochs with ``batch_size``).
      batch_size: int or None, default None. Passed to ``kmeans`` (mini-batch mode).
      max_cv: float or None, default 1.0. Balance check: largest coefficient of variation of
        the cluster sizes (None: no limit); the default is the cluster stage's.
      max_ratio: float or None, default 50.0. Balance check: largest max/min cluster-size
        ratio (None: no limit); the default is the cluster stage's. A clustering with an empty
        cluster never passes.

    Returns:
      A ``KSelection``: the chosen ``k`` and the ``table`` of ``KRow`` per candidate.

    Raises:
      ValueError: if the embeddings are invalid, the grid is empty or holds a k outside
        ``[2, N]``, or ``seed``, ``sample``, ``n_iter`` or ``batch_size`` are invalid.
    """
    x = _validate_embeddings(embeddings)
    n = x.shape[0]
    seed = _check_int("seed", seed, 0)
    sample = _check_int("sample", sample, 2)
    n_iter = _check_int("n_iter", n_iter, 1)
    if batch_size is not None:
        _check_int("batch_size", batch_size, 1)
    if grid is None:
        grid = k_grid(n)
    grid = list(grid)
    if not grid:
        raise ValueError("`grid` must hold at least one k. Received: grid=[]")
    for k in grid:
        _check_int("grid", k, 2)
        if k > n:
            raise ValueError(f"`grid` values must be <= the number of rows N={n}. Received: {k} in grid")
    grid = sorted({int(k) for k in grid})

    rng = np.random.default_rng(seed)
    rows = np.arange(n) if n <= sample else np.sort(rng.choice(n, sample, replace=False))
    dist = _pairwise_distances(np.asarray(x[rows], dtype=np.float64))

    table = []
    for k in grid:
        result = kmeans(x, k, seed=seed, n_iter=n_iter, batch_size=batch_size)
        report = balance_report(result.assignments, k)
        table.append(KRow(
            k=k,
            silhouette=_silhouette_from_distances(dist, result.assignments[rows]),
            cv=float(report["cv"]),
            max_min_ratio=float(report["max_min_ratio"]),
            balanced=_passes(report, max_cv, max_ratio),
        ))
    candidates = [row for row in table if row.balanced] or table
    # NaN silhouettes rank last; max() keeps the first (smallest k) of equal scores.
    best = max(candidates, key=lambda row: -math.inf if math.isnan(row.silhouette) else row.silhouette)
    return KSelection(best.k, table)


def format_k_table(selection: KSelection) -> str:
    """A small text table of a ``choose_k`` sweep, the chosen row marked ``<- chosen``.

    Args:
      selection: a ``KSelection`` from ``choose_k``.

    Returns:
      Multi-line text: a header, one line per k (silhouette, size cv, max/min, balanced).
    """
    lines = [f"k by silhouette sweep: chose k={selection.k}",
             f"  {'k':>5}  {'silhouette':>10}  {'cv':>6}  {'max/min':>8}  {'balanced':>8}"]
    for row in selection.table:
        mark = "  <- chosen" if row.k == selection.k else ""
        lines.append(f"  {row.k:>5}  {row.silhouette:>10.4f}  {row.cv:>6.3f}  {row.max_min_ratio:>8.2f}  "
                     f"{'yes' if row.balanced else 'no':>8}{mark}")
    if not any(row.balanced for row in selection.table):
        lines.append("  (no k passed the balance check: chose the best silhouette overall)")
    return "\n".join(lines)
