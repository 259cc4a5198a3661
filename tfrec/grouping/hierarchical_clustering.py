"""TWIN-V2's hierarchical clustering of one user's behaviors, in numpy (the input-pipeline path).

TWIN V2 (Si et al., CIKM 2024, arXiv 2407.16357, sec. 3.2, Algorithm 1) compresses each user's
life-cycle behaviors offline: split them into groups by play-completion ratio, then, inside each
group, recursively k-means-split any cluster holding more than gamma behaviors, the number of
children growing with the cluster's size. This module is the plain reference of that procedure on
fixed shapes; ``tfrec.layers.HierarchicalClustering`` is the same procedure in graph (the
``user_tower``'s path) and is tested equal to it. Both are deterministic (no random init):

1. Level 0: one cluster per group key present (ids in ascending key order).
2. Levels 1..``max_depth``: every cluster of n > gamma behaviors is split by k-means into
   ``k = clip(floor(n ** branching_exponent), 2, max_branching)`` (``branching``)
   children (Algorithm 1's adaptive k; 1 = not split). Seeds: farthest-point (maximin): the member
   farthest from the cluster mean, then repeatedly the member farthest from the seeds so far; a
   seed at distance 0 from the previous ones (only duplicates left) is not used, so identical
   vectors are never split apart. ``iterations`` Lloyd steps (assign to the nearest seed/centroid,
   ties to the lower seed index; an emptied centroid keeps its place). Children are numbered by
   (parent id, child index), empty children dropped. A cluster k-means cannot separate (identical
   vectors) stays whole; ``max_depth`` bounds the recursion, so a final cluster may exceed gamma.
3. Cluster outputs: size n, representative = the member closest to the cluster mean (the paper's
   "item closest to the centroid"), last position = its most recent member. When more than M
   clusters remain, the M largest are kept (ties: the more recent last member); kept clusters are
   ordered by their last member, oldest first, and right-aligned in the M slots (like the behavior
   window: padding on the left, the most recent cluster in slot M-1).

Ties between members (argmax / argmin of a distance) go to the more recent member (the larger
position); ties between seeds go to the lower seed. Distances are squared Euclidean in float64
(``sum((x - c) ** 2)``), and two distances within ``tie_tolerance`` of each other (relative 1e-9,
absolute 1e-12) are a tie: numpy and TensorFlow sum the D squares and a centroid's members in
different orders (and TensorFlow's order may depend on the CPU's vector width), so mathematically
equal distances (duplicates, symmetric points such as two-hot vectors) can differ in their last
bits; without the tolerance that rounding, not the rule, would pick the seed, the centroid or the
representative, and the two paths (or two machines) would cluster differently.
"""
from __future__ import annotations

import math

import numpy as np


def branching_thresholds(max_branching: int, branching_exponent: float) -> tuple[int, ...]:
    """``t_k`` for k = 3..``max_branching``: the smallest size n with ``floor(n ** branching_exponent) >= k``.

    Both paths count thresholds instead of calling ``pow`` (``1024 ** 0.3`` is 8 only up to 1 ulp, so
    a libm difference would change k at exact powers); the +1e-9 makes exact powers reach their k.
    """
    out = []
    for k in range(3, max_branching + 1):
        n = max(int((k - 1e-9) ** (1.0 / branching_exponent)) - 2, 1)
        while math.floor(n ** branching_exponent + 1e-9) < k:
            n += 1
        out.append(n)
    return tuple(out)


def branching(sizes, cluster_size: int, thresholds) -> np.ndarray:
    """Children per cluster of ``sizes`` (Algorithm 1's adaptive k): 1 (no split) when n <= gamma, else
    ``clip(floor(n ** e), 2, max_branching)`` = 2 + the number of thresholds ``t_k <= n``."""
    sizes = np.asarray(sizes, np.int64)
    k = 2 + sum((sizes >= t).astype(np.int64) for t in thresholds)
    return np.where(sizes > cluster_size, k, 1)


TIE_RTOL, TIE_ATOL = 1e-9, 1e-12


def tie_tolerance(best):
    """How far below a maximum (above a minimum) ``best`` of squared distances a value still ties."""
    return TIE_RTOL * np.abs(best) + TIE_ATOL


def _last_argmax(values: np.ndarray) -> int:
    """Index of the maximum, ties (within ``tie_tolerance``) to the last (most recent) index."""
    best = values.max()
    return int(np.flatnonzero(values >= best - tie_tolerance(best))[-1])


def _last_argmin(values: np.ndarray) -> int:
    """Index of the minimum, ties (within ``tie_tolerance``) to the last (most recent) index."""
    best = values.min()
    return int(np.flatnonzero(values <= best + tie_tolerance(best))[-1])


def _sq_dist(points: np.ndarray, center: np.ndarray) -> np.ndarray:
    return np.sum((points - center) ** 2, axis=-1)


def _kmeans(points: np.ndarray, k: int, iterations: int) -> np.ndarray:
    """Labels ``[n]`` in ``[0, k)`` of deterministic k-means on ``points`` (float64, time order)."""
    mean = np.sum(points, 0) / len(points)
    seeds = [_last_argmax(_sq_dist(points, mean))]
    nearest = _sq_dist(points, points[seeds[0]])
    for _ in range(1, k):
        if nearest.max() <= 0:  # only duplicates of the seeds left
            break
        seeds.append(_last_argmax(nearest))
        nearest = np.minimum(nearest, _sq_dist(points, points[seeds[-1]]))
    centroids = points[seeds].copy()
    labels = np.zeros(len(points), np.int64)
    for _ in range(iterations):
        dist = np.stack([_sq_dist(points, c) for c in centroids], axis=1)  # [n, k']
        low = dist.min(axis=1, keepdims=True)
        labels = np.argmax(dist <= low + tie_tolerance(low), axis=1)  # first (near-)minimum: the lower seed
        for j in range(len(centroids)):
            members = labels == j
            if members.any():
                centroids[j] = np.sum(points[members], 0) / members.sum()
    return labels


def _compact(ids: np.ndarray) -> np.ndarray:
    """Dense ranks of the non-negative ids (ascending), -1 kept."""
    out = np.full_like(ids, -1)
    used = np.unique(ids[ids >= 0])
    out[ids >= 0] = np.searchsorted(used, ids[ids >= 0])
    return out


def cluster_history(vectors, groups, mask, *, num_groups: int, cluster_size: int, max_clusters: int,
                    max_depth: int, iterations: int, max_branching: int,
                    branching_exponent: float) -> dict[str, np.ndarray]:
    """Clusters one user's behavior window (see the module docstring).

    Args:
      vectors: float ``[N, D]`` content vectors of the behaviors.
      groups: int ``[N]`` group key of each behavior (clipped to ``[0, num_groups)``).
      mask: ``[N]`` nonzero = a real behavior.
      num_groups, cluster_size (gamma), max_clusters (M), max_depth, iterations, max_branching,
        branching_exponent: as ``HierarchicalClustering``.

    Returns:
      dict with ``assignment`` int32 ``[N]`` (the output slot of each behavior's cluster; -1 for
      padding and for behaviors of dropped clusters), ``representative`` int32 ``[M]`` (window
      position; 0 in empty slots), ``size`` float32 ``[M]`` and ``mask`` float32 ``[M]``.
    """
    x = np.asarray(vectors, np.float64)
    n_total = len(x)
    valid = np.asarray(mask) > 0
    cid = np.where(valid, np.clip(np.asarray(groups, np.int64), 0, num_groups - 1), -1)
    cid = _compact(cid)
    thresholds = branching_thresholds(max_branching, branching_exponent)
    for _ in range(max_depth):
        raw = np.full(n_total, -1, np.int64)
        for c in range(cid.max() + 1 if valid.any() else 0):
            members = np.flatnonzero(cid == c)
            k = int(branching(len(members), cluster_size, thresholds))
            labels = _kmeans(x[members], k, iterations) if k > 1 else np.zeros(len(members), np.int64)
            raw[members] = c * max_branching + labels
        cid = _compact(raw)

    m = max_clusters
    out = {"assignment": np.full(n_total, -1, np.int32), "representative": np.zeros(m, np.int32),
           "size": np.zeros(m, np.float32), "mask": np.zeros(m, np.float32)}
    clusters = []  # (size, last position, representative, cluster id)
    for c in range(cid.max() + 1 if valid.any() else 0):
        members = np.flatnonzero(cid == c)
        centroid = np.sum(x[members], 0) / len(members)
        dist = _sq_dist(x[members], centroid)
        rep = int(members[_last_argmin(dist)])
        clusters.append((len(members), int(members[-1]), rep, c))
    kept = sorted(clusters, key=lambda t: (t[0], t[1]), reverse=True)[:m]
    kept.sort(key=lambda t: t[1])  # oldest last member first
    for slot, (size, _, rep, c) in zip(range(m - len(kept), m), kept):
        out["assignment"][cid == c] = slot
        out["representative"][slot] = rep
        out["size"][slot] = size
        out["mask"][slot] = 1.0
    return out


def cluster_histories(vectors, groups, mask, **params) -> dict[str, np.ndarray]:
    """``cluster_history`` over a batch: ``[B, N, D]``, ``[B, N]``, ``[B, N]`` -> the same keys with a
    leading ``B``."""
    rows = [cluster_history(v, g, m, **params) for v, g, m in zip(vectors, groups, mask)]
    return {key: np.stack([r[key] for r in rows]) for key in ("assignment", "representative", "size", "mask")}


def principal_directions(vectors, dim: int) -> np.ndarray:
    """``[D, min(dim, D)]`` float32: the top principal directions of the rows of ``vectors`` ``[n, D]``.

    TWIN-V2 clusters on ``vectors @ principal_directions(table, dim)`` when its items' content vectors
    are wider than ``dim``: k-means' squared distances cost O(D) per point and centroid, and a
    384-d text embedding made the clustering ~10x slower than a 32-d one (``bench/clustering_width.py``)
    while the leading directions keep most of the spread the splits follow.

    All-zero rows (unknown / unlisted items) are left out. Eigenvectors of the rows' covariance
    (float64, accumulated over chunks of rows), by decreasing eigenvalue; each column's sign is fixed so that its largest-magnitude
    entry is positive (deterministic across LAPACK builds, except that near-equal eigenvalues at the
    cut may rotate the basis there). No rows: zeros.
    """
    x = np.asarray(vectors)
    d = x.shape[1]
    k = min(int(dim), d)
    if k < 1:
        raise ValueError(f"principal_directions needs dim >= 1. Received: dim={dim}")
    # sum and Gram matrix over chunks of rows, in float64: memory O(chunk * D), not copies of the table
    n, total, gram = 0, np.zeros(d), np.zeros((d, d))
    for start in range(0, len(x), 65536):
        rows = x[start:start + 65536].astype(np.float64)
        rows = rows[np.any(rows != 0.0, axis=1)]
        n, total, gram = n + len(rows), total + rows.sum(0), gram + rows.T @ rows
    if not n:
        return np.zeros((d, k), np.float32)
    mean = total / n
    values, vecs = np.linalg.eigh(gram / n - np.outer(mean, mean))
    top = vecs[:, np.argsort(-values, kind="stable")[:k]]
    signs = np.sign(top[np.argmax(np.abs(top), axis=0), np.arange(k)])
    return (top * np.where(signs == 0, 1.0, signs)).astype(np.float32)
