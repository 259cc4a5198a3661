"""K-means grouping of item embeddings, its balance report, and the item -> group table.

DMGIN (Multimodal Group Interest Network) clusters the items' multimodal embeddings with
K-means and aggregates the behavior sequence per group. This module builds that grouping:

* ``kmeans``: greedy k-means++ seeding (Arthur & Vassilvitskii, 2007) followed by Lloyd
  iterations, or by mini-batch K-means (Sculley, 2010, "Web-scale k-means clustering",
  Algorithm 1) when ``batch_size`` is set. Plain numpy, deterministic under ``seed``;
  distances are computed in row chunks so memory stays bounded for millions of items.
* ``balance_report`` / ``check_balance`` / ``format_balance_report``: how even the clusters
  are (a handful of giant groups makes group-wise aggregation pointless).
* ``item_to_group_table`` / ``save_group_table`` / ``load_group_table``: the table the model
  stores. Group ids are ``1..k`` for the clusters; **group 0 is reserved** for unknown items
  (no embedding, out of vocabulary). ``centroids[g - 1]`` is the centroid of group ``g``.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np
from tqdm.auto import tqdm

PathLike = Union[str, os.PathLike]

# Entries of the [rows, k] distance matrix computed at once (16 MiB in float32).
_CHUNK_ELEMENTS = 1 << 22
_ON_FAIL = ("warn", "raise")
# Lloyd iterations on the init sample before mini-batch epochs.
_SAMPLE_LLOYD_ITERATIONS = 10


class KMeansResult(NamedTuple):
    """The outcome of ``kmeans``.

    Attributes:
      centroids: float32 ``[k, D]``.
      assignments: int32 ``[N]``, the cluster (``0..k-1``) of each row: its nearest centroid.
      inertia: sum of squared distances of the rows to their centroids.
      n_iter: Lloyd iterations run, or epochs (passes over the data) in mini-batch mode.
    """

    centroids: np.ndarray
    assignments: np.ndarray
    inertia: float
    n_iter: int


class GroupTable(NamedTuple):
    """An item -> group table as stored by ``save_group_table``.

    Attributes:
      table: int32 ``[n_items]``; ``table[item_id]`` is the item's group, 0 meaning unknown.
      centroids: float32 ``[k, D]``; ``centroids[g - 1]`` belongs to group ``g``.
      n_groups: ``k + 1``, the reserved group 0 included (the size of a group embedding).
      report: the ``balance_report`` of the clustering.
    """

    table: np.ndarray
    centroids: np.ndarray
    n_groups: int
    report: Dict[str, Any]


def _check_int(name: str, value: Any, minimum: int) -> int:
    """Returns ``value`` as an int, or raises ValueError if it is not an int >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"`{name}` must be an integer. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}. Received: {name}={value}")
    return int(value)


def _validate_embeddings(embeddings: Any) -> np.ndarray:
    """Returns ``embeddings`` as a finite real 2-D array (a memmap stays a memmap)."""
    x = embeddings if isinstance(embeddings, np.ndarray) else np.asarray(embeddings)
    if x.ndim != 2:
        raise ValueError(f"`embeddings` must be 2-D [N, D]. Received: embeddings.shape={x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"`embeddings` is empty. Received: embeddings.shape={x.shape}")
    if x.dtype.kind not in "iuf":
        raise ValueError(f"`embeddings` must be real numbers. Received: embeddings.dtype={x.dtype}")
    if x.dtype.kind == "f":
        rows = max(1, _CHUNK_ELEMENTS // x.shape[1])
        for start in range(0, x.shape[0], rows):
            finite = np.isfinite(x[start : start + rows])
            if not finite.all():
                bad = start + int(np.flatnonzero(~finite.all(axis=1))[0])
                raise ValueError(
                    f"`embeddings` must be finite; row {bad} holds NaN or inf. "
                    f"Received: embeddings[{bad}]={np.asarray(x[bad])[:8].tolist()}..."
                )
    return x


def _chunk_rows(k: int) -> int:
    return max(1, _CHUNK_ELEMENTS // k)


def _assign(
    x: np.ndarray, centroids: np.ndarray, with_sums: bool = False
) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """Nearest centroid of every row, in row chunks.

    Args:
      x: ``[N, D]`` rows (any real dtype; each chunk is cast to float32).
      centroids: float32 ``[k, D]``.
      with_sums: also return the per-cluster row sums and counts.

    Returns:
      ``(assignments int32 [N], sq_dist float32 [N], sums float64 [k, D] | None,
      counts int64 [k] | None)``; ``sq_dist`` is the exact squared distance to the chosen
      centroid.
    """
    n, d = x.shape
    k = centroids.shape[0]
    c_sq = np.einsum("kd,kd->k", centroids, centroids)
    assignments = np.empty(n, dtype=np.int32)
    sq_dist = np.empty(n, dtype=np.float32)
    sums = np.zeros((k, d), dtype=np.float64) if with_sums else None
    counts = np.zeros(k, dtype=np.int64) if with_sums else None
    rows = _chunk_rows(k)
    for start in range(0, n, rows):
        chunk = np.asarray(x[start : start + rows], dtype=np.float32)
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; ||x||^2 is constant per row, so it is left
        # out of the argmin. [rows, D] x [D, k] -> [rows, k]
        scores = chunk @ centroids.T
        scores *= -2.0
        scores += c_sq[None, :]
        labels = np.argmin(scores, axis=1).astype(np.int32)
        diff = chunk - centroids[labels]
        assignments[start : start + len(chunk)] = labels
        sq_dist[start : start + len(chunk)] = np.einsum("nd,nd->n", diff, diff)
        if with_sums:
            counts += np.bincount(labels, minlength=k)
            for j in range(d):
                sums[:, j] += np.bincount(labels, weights=chunk[:, j], minlength=k)
    return assignments, sq_dist, sums, counts


def _sq_dist_to_rows(sample: np.ndarray, sq_norm: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """float32 ``[len(rows), M]`` squared distances from ``sample[rows]`` to every sample row."""
    # [T, D] x [D, M] -> [T, M]
    dist = sample[rows] @ sample.T
    dist *= -2.0
    dist += sq_norm[None, :]
    dist += sq_norm[rows][:, None]
    return np.maximum(dist, 0.0, out=dist)


def _kmeans_plus_plus(sample: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii, 2007, sec. 6; as in scikit-learn).

    Each next centroid is drawn with probability proportional to D(x)^2, the squared distance
    to the nearest centroid so far; greedy: ``2 + ln k`` candidates are drawn and the one that
    lowers sum D(x)^2 the most is kept, which makes two seeds in one true cluster rare.

    Args:
      sample: float32 ``[M, D]``, ``M >= k``.
      k: number of centroids.
      rng: the random generator.

    Returns:
      float32 ``[k, D]`` centroids, rows of ``sample``.
    """
    m = sample.shape[0]
    n_trials = 2 + int(math.log(k))
    sq_norm = np.einsum("md,md->m", sample, sample)
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = rng.integers(m)
    closest = _sq_dist_to_rows(sample, sq_norm, chosen[:1])[0]
    closest[chosen[0]] = 0.0
    for i in range(1, k):
        cumulative = np.cumsum(closest, dtype=np.float64)
        if cumulative[-1] <= 0:
            # Fewer distinct rows than k: take a row not chosen yet, uniformly.
            remaining = np.setdiff1d(np.arange(m), chosen[:i])
            chosen[i] = remaining[rng.integers(len(remaining))]
            continue
        draws = rng.random(n_trials) * cumulative[-1]
        candidates = np.searchsorted(cumulative, draws, side="right")
        # Rounding can put a draw past the end; take the last drawable row then.
        candidates[candidates >= m] = np.flatnonzero(closest)[-1]
        updated = np.minimum(_sq_dist_to_rows(sample, sq_norm, candidates), closest[None, :])
        best = int(np.argmin(updated.sum(axis=1, dtype=np.float64)))
        chosen[i] = candidates[best]
        closest = updated[best]
        closest[chosen[: i + 1]] = 0.0  # float error must not make a chosen row drawable again
    return sample[chosen].copy()


def _reseed(centroids: np.ndarray, empty: np.ndarray, rows: np.ndarray, sq_dist: np.ndarray) -> int:
    """Moves empty clusters onto the rows farthest from their centroids (deterministic).

    Args:
      centroids: float32 ``[k, D]``, updated in place.
      empty: indices of the empty clusters.
      rows: ``[M, D]`` candidate rows (an array or memmap; only the chosen rows are read).
      sq_dist: ``[M]`` squared distance of each candidate to its centroid.

    Returns:
      How many clusters were re-seeded (at most ``M``).
    """
    n_reseed = min(len(empty), len(sq_dist))
    farthest = np.argsort(-sq_dist, kind="stable")[:n_reseed]
    centroids[empty[:n_reseed]] = rows[farthest]
    return n_reseed


def kmeans(
    embeddings: np.ndarray,
    k: int,
    seed: int = 0,
    n_iter: int = 50,
    batch_size: Optional[int] = None,
    tol: float = 1e-6,
    progress: bool = False,
) -> KMeansResult:
    """Clusters item embeddings with K-means (greedy k-means++ init, Lloyd or mini-batch).

    Minimises sum_i ||x_i - c_{a(i)}||^2. Lloyd iterations recompute every centroid as the mean
    of its rows; mini-batch mode (Sculley 2010, Algorithm 1) moves each centroid towards the
    batch rows assigned to it with a per-centroid learning rate 1 / (rows seen so far), so a
    centroid is the running mean of every row it was ever given.

    Lloyd stops after ``n_iter`` iterations or when the summed squared centroid shift of one
    iteration is <= ``tol`` x the mean per-feature variance of the data (the sklearn rule).
    Mini-batch mode counts ``n_iter`` in epochs (each epoch visits every row once in a random
    order, in batches of ``batch_size``) and applies the same rule to the shift over an epoch;
    for millions of items a few epochs usually suffice, so pass a small ``n_iter``. Its
    seeding runs on a random sample of ``max(3 * batch_size, 3 * k)`` rows and is refined by
    up to 10 Lloyd iterations on that sample (single-row seeds would otherwise starve).

    An empty cluster is re-seeded on the row farthest from its centroid (in mini-batch mode,
    from the epoch's last batch), so results stay deterministic. Distances are computed in row
    chunks of about 4M entries, so the extra memory is O(N + k D + chunk). Lloyd mode works on
    a float32 view of the data (a copy only if the input is not float32) and its seeding costs
    about ``(2 + ln k) k N`` distance terms, like a few Lloyd iterations; mini-batch mode reads
    the rows batch by batch, so an ``np.memmap`` input stays on disk.

    Args:
      embeddings: ``[N, D]`` real array, one row per item; no NaN or inf.
      k: int, number of clusters, ``1 <= k <= N``.
      seed: int, default 0. Seed of every random choice; same inputs + same seed -> same
        result.
      n_iter: int, default 50. Maximum Lloyd iterations, or mini-batch epochs.
      batch_size: int or None, default None. None runs Lloyd on all rows; an int runs
        mini-batch K-means with batches of that many rows (clipped to N).
      tol: float, default 1e-6. Relative convergence tolerance (see above); 0 runs all
        ``n_iter`` unless the centroids stop moving exactly.
      progress: bool, default False. Show a progress bar over iterations / epochs.

    Returns:
      A ``KMeansResult``: float32 centroids ``[k, D]``, int32 assignments ``[N]`` (nearest
      final centroid), the inertia of that assignment, and the iterations/epochs run.

    Raises:
      ValueError: if ``embeddings`` is not a finite real 2-D non-empty array, ``k`` is not in
        ``[1, N]``, or ``n_iter``, ``batch_size``, ``tol`` or ``seed`` are invalid.
    """
    x = _validate_embeddings(embeddings)
    n, d = x.shape
    k = _check_int("k", k, 1)
    if k > n:
        raise ValueError(f"`k` must be <= the number of rows N={n}. Received: k={k}")
    seed = _check_int("seed", seed, 0)
    n_iter = _check_int("n_iter", n_iter, 1)
    if batch_size is not None:
        batch_size = min(_check_int("batch_size", batch_size, 1), n)
    if not (isinstance(tol, (int, float, np.floating)) and tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"`tol` must be a finite number >= 0. Received: tol={tol!r}")

    rng = np.random.default_rng(seed)
    if batch_size is None:
        sample = np.asarray(x, dtype=np.float32)
    else:
        init_size = min(n, max(3 * batch_size, 3 * k))
        sample = np.asarray(x[np.sort(rng.choice(n, init_size, replace=False))], dtype=np.float32)
    tol_scaled = float(tol) * float(np.mean(np.var(sample, axis=0, dtype=np.float64)))
    centroids = _kmeans_plus_plus(sample, k, rng)
    if batch_size is not None:
        # Refine the seeds on the sample first: seeds that are single (outlying) rows starve in
        # mini-batch mode, since batch-mean centroids win every row before they move.
        _lloyd(sample, centroids, min(n_iter, _SAMPLE_LLOYD_ITERATIONS), tol_scaled)
    del sample

    if batch_size is None:
        iterations = _lloyd(x, centroids, n_iter, tol_scaled, progress)
    else:
        iterations = _minibatch(x, centroids, n_iter, batch_size, tol_scaled, rng, progress)

    assignments, sq_dist, _, _ = _assign(x, centroids)
    inertia = float(np.sum(sq_dist, dtype=np.float64))
    return KMeansResult(centroids, assignments, inertia, iterations)


def _steps(n_iter: int, progress: bool, desc: str):
    return tqdm(range(1, n_iter + 1), desc=desc, disable=not progress, leave=False)


def _lloyd(x: np.ndarray, centroids: np.ndarray, n_iter: int, tol_scaled: float, progress: bool = False) -> int:
    """Lloyd iterations on all rows; updates ``centroids`` in place, returns iterations run."""
    for iteration in _steps(n_iter, progress, "k-means (Lloyd)"):
        _, sq_dist, sums, counts = _assign(x, centroids, with_sums=True)
        updated = centroids.copy()
        filled = counts > 0
        updated[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
        empty = np.flatnonzero(~filled)
        if len(empty):
            _reseed(updated, empty, x, sq_dist)
        shift = float(np.sum((updated.astype(np.float64) - centroids) ** 2))
        centroids[...] = updated
        if shift <= tol_scaled:
            break
    return iteration


def _minibatch(
    x: np.ndarray,
    centroids: np.ndarray,
    n_iter: int,
    batch_size: int,
    tol_scaled: float,
    rng: np.random.Generator,
    progress: bool = False,
) -> int:
    """Mini-batch K-means epochs; updates ``centroids`` in place, returns epochs run."""
    n = x.shape[0]
    k = centroids.shape[0]
    seen_total = np.zeros(k, dtype=np.int64)
    for epoch in _steps(n_iter, progress, "k-means (mini-batch epochs)"):
        start_centroids = centroids.astype(np.float64)
        seen = np.zeros(k, dtype=bool)
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            batch = np.asarray(x[np.sort(order[start : start + batch_size])], dtype=np.float32)
            _, sq_dist, sums, counts = _assign(batch, centroids, with_sums=True)
            hit = counts > 0
            seen_total[hit] += counts[hit]
            # Sculley's per-row update c <- (1 - 1/v) c + x / v, applied for all of a centroid's
            # batch rows at once: c <- c + (sum_x - n c) / v_new.
            step = (sums[hit] - counts[hit, None] * centroids[hit]) / seen_total[hit, None]
            centroids[hit] += step.astype(np.float32)
            seen |= hit
        empty = np.flatnonzero(~seen)
        if len(empty):
            reseeded = _reseed(centroids, empty, batch, sq_dist)
            seen_total[empty[:reseeded]] = 1
        shift = float(np.sum((centroids - start_centroids) ** 2))
        if shift <= tol_scaled:
            break
    return epoch


def balance_report(assignments: np.ndarray, k: int) -> Dict[str, Any]:
    """Cluster-size statistics of an assignment.

    Args:
      assignments: int ``[N]`` cluster ids in ``[0, k)``.
      k: int, number of clusters (clusters with no row count as empty).

    Returns:
      A JSON-ready dict: ``k``, ``n_items``, ``sizes`` (list of k ints), ``max``, ``min``,
      ``mean`` (N / k), ``std`` (population), ``cv`` (std / mean), ``n_empty``,
      ``max_min_ratio`` (max / min; ``inf`` when a cluster is empty) and ``histogram``: a list
      of ``{"min_size", "max_size", "n_clusters"}`` bins, one for size 0 then powers of two
      (1, 2-3, 4-7, ...) up to the bin holding the largest cluster.

    Raises:
      ValueError: if ``assignments`` is not a 1-D integer array with values in ``[0, k)``.
    """
    k = _check_int("k", k, 1)
    a = np.asarray(assignments)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise ValueError(
            "`assignments` must be a 1-D integer array. "
            f"Received: assignments.shape={a.shape}, assignments.dtype={a.dtype}"
        )
    if a.size and (a.min() < 0 or a.max() >= k):
        raise ValueError(
            f"`assignments` must lie in [0, k={k}). Received: min={a.min()}, max={a.max()}"
        )
    sizes = np.bincount(a, minlength=k).astype(np.int64)
    mean = float(sizes.mean())
    std = float(sizes.std())
    smallest, largest = int(sizes.min()), int(sizes.max())
    # Bin 0 holds empty clusters, bin j >= 1 sizes [2^(j-1), 2^j - 1].
    bins = np.zeros(len(sizes), dtype=np.int64)
    nonzero = sizes > 0
    bins[nonzero] = np.floor(np.log2(sizes[nonzero])).astype(np.int64) + 1
    counts = np.bincount(bins, minlength=int(bins.max()) + 1)
    histogram = [
        {
            "min_size": 0 if j == 0 else 2 ** (j - 1),
            "max_size": 0 if j == 0 else 2**j - 1,
            "n_clusters": int(c),
        }
        for j, c in enumerate(counts)
    ]
    return {
        "k": k,
        "n_items": int(a.size),
        "sizes": sizes.tolist(),
        "max": largest,
        "min": smallest,
        "mean": mean,
        "std": std,
        "cv": std / mean if mean > 0 else float("nan"),
        "n_empty": int((sizes == 0).sum()),
        "max_min_ratio": largest / smallest if smallest > 0 else float("inf"),
        "histogram": histogram,
    }


def check_balance(
    report: Dict[str, Any],
    max_cv: Optional[float] = 1.0,
    max_ratio: Optional[float] = 100.0,
    max_empty: Optional[int] = 0,
    on_fail: str = "warn",
) -> List[str]:
    """Checks a ``balance_report`` against thresholds; warns or raises on failure.

    Args:
      report: a dict from ``balance_report``.
      max_cv: float or None, default 1.0. Largest allowed coefficient of variation of the
        cluster sizes; None skips the check.
      max_ratio: float or None, default 100.0. Largest allowed max/min cluster-size ratio
        (infinite with an empty cluster); None skips the check.
      max_empty: int or None, default 0. Largest allowed number of empty clusters; None skips.
      on_fail: ``"warn"`` (default) issues a ``UserWarning``; ``"raise"`` raises ValueError.

    Returns:
      The failure messages, each naming the figure, its value and the threshold; empty when
      the report passes.

    Raises:
      ValueError: if ``on_fail`` is ``"raise"`` and a check fails, or ``on_fail`` is unknown.
    """
    if on_fail not in _ON_FAIL:
        raise ValueError(f"`on_fail` must be one of {_ON_FAIL}. Received: on_fail={on_fail!r}")
    failures = []
    checks = (("cv", max_cv, "max_cv"), ("max_min_ratio", max_ratio, "max_ratio"),
              ("n_empty", max_empty, "max_empty"))  # fmt: skip
    for figure, limit, limit_name in checks:
        value = report[figure]
        # A NaN cv (no items at all) fails too.
        if limit is not None and not value <= limit:
            failures.append(f"{figure}={value:.4g} > {limit_name}={limit:g}")
    if failures:
        message = (
            f"K-means cluster balance check failed (k={report['k']}, "
            f"n_items={report['n_items']}): " + "; ".join(failures)
        )
        if on_fail == "raise":
            raise ValueError(message)
        warnings.warn(message, UserWarning, stacklevel=2)
    return failures


def format_balance_report(report: Dict[str, Any]) -> str:
    """A short human-readable table of a ``balance_report``.

    Args:
      report: a dict from ``balance_report``.

    Returns:
      Multi-line text: the summary figures, then the size histogram.
    """
    lines = [
        f"K-means balance: k={report['k']}, items={report['n_items']}",
        f"  cluster size  min {report['min']}  max {report['max']}  "
        f"mean {report['mean']:.2f}  std {report['std']:.2f}",
        f"  cv {report['cv']:.3f}  max/min {report['max_min_ratio']:.2f}  "
        f"empty {report['n_empty']}",
        f"  {'size':>17}  {'clusters':>8}",
    ]
    for row in report["histogram"]:
        lo, hi = row["min_size"], row["max_size"]
        label = str(lo) if lo == hi else f"{lo}-{hi}"
        lines.append(f"  {label:>17}  {row['n_clusters']:>8}")
    return "\n".join(lines)


def item_to_group_table(assignments: np.ndarray) -> np.ndarray:
    """The item -> group table: cluster ``c`` becomes group ``c + 1``; group 0 is reserved.

    Args:
      assignments: int ``[n_items]``, indexed by item id: the item's cluster in ``[0, k)``,
        or -1 for an item with no embedding (it maps to the reserved group 0).

    Returns:
      int32 ``[n_items]`` group ids in ``[0, k]``.

    Raises:
      ValueError: if ``assignments`` is not a 1-D integer array with values >= -1.
    """
    a = np.asarray(assignments)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise ValueError(
            "`assignments` must be a 1-D integer array. "
            f"Received: assignments.shape={a.shape}, assignments.dtype={a.dtype}"
        )
    if a.size and a.min() < -1:
        raise ValueError(f"`assignments` must be >= -1. Received: min={a.min()}")
    return (a + 1).astype(np.int32)


def _balance_json_path(path: Path) -> Path:
    return path.with_suffix(".balance.json")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Not JSON serializable: {type(value).__name__}")


def save_npz_with_report(path: Path, json_path: Path, report_json: str, **arrays: np.ndarray) -> None:
    """Writes ``arrays`` + ``report_json`` to ``path`` (.npz) atomically, then the report beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, report_json=np.array(report_json), **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    json_path.write_text(report_json + "\n")


def save_group_table(
    path: PathLike, table: np.ndarray, centroids: np.ndarray, report: Dict[str, Any]
) -> Tuple[Path, Path]:
    """Writes the table, centroids and balance report to one ``.npz`` (+ a JSON report).

    The ``.npz`` holds ``table`` (int32), ``centroids`` (float32), ``n_groups`` (k + 1) and
    ``report_json``, and is written atomically (temporary file + rename). The report is also
    written, for people and dashboards, beside it as ``<stem>.balance.json``
    (``groups.npz`` -> ``groups.balance.json``); an empty cluster's ``max_min_ratio`` appears
    there as ``Infinity``.

    Args:
      path: destination ending in ``.npz``.
      table: int ``[n_items]`` from ``item_to_group_table``, values in ``[0, k]``.
      centroids: ``[k, D]`` cluster centroids (``centroids[g - 1]`` for group ``g``).
      report: the ``balance_report`` of the clustering.

    Returns:
      ``(npz_path, json_path)``.

    Raises:
      ValueError: if ``path`` does not end in ``.npz``, or the table, centroids and report
        disagree (shapes, group ids out of ``[0, k]``, ``report["k"] != k``).
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"`path` must end with .npz. Received: path={str(path)!r}")
    table = np.asarray(table)
    centroids = np.asarray(centroids, dtype=np.float32)
    if centroids.ndim != 2 or centroids.shape[0] == 0:
        raise ValueError(f"`centroids` must be [k, D] with k >= 1. Received: shape={centroids.shape}")
    k = centroids.shape[0]
    if table.ndim != 1 or table.dtype.kind not in "iu":
        raise ValueError(
            f"`table` must be a 1-D integer array. Received: table.shape={table.shape}, "
            f"table.dtype={table.dtype}"
        )
    if table.size and (table.min() < 0 or table.max() > k):
        raise ValueError(
            f"`table` group ids must lie in [0, k={k}] (0 = unknown item). "
            f"Received: min={table.min()}, max={table.max()}"
        )
    if report.get("k", k) != k:
        raise ValueError(f"`report` is for k={report['k']} but centroids have k={k}.")
    report_json = json.dumps(report, default=_json_default, indent=2)

    save_npz_with_report(path, _balance_json_path(path), report_json, table=table.astype(np.int32),
                         centroids=centroids, n_groups=np.int64(k + 1))
    return path, _balance_json_path(path)


def load_group_table(path: PathLike) -> GroupTable:
    """Reads a table written by ``save_group_table``.

    Args:
      path: the ``.npz`` file.

    Returns:
      A ``GroupTable``; its report comes from the ``.npz`` itself, not the JSON beside it.

    Raises:
      ValueError: if the file lacks a field or its fields disagree.
    """
    with np.load(Path(path), allow_pickle=False) as data:
        missing = {"table", "centroids", "n_groups", "report_json"} - set(data.files)
        if missing:
            raise ValueError(f"{str(path)!r} is not a group table: missing {sorted(missing)}.")
        table = data["table"]
        centroids = data["centroids"]
        n_groups = int(data["n_groups"])
        report = json.loads(str(data["report_json"]))
    if n_groups != centroids.shape[0] + 1 or (table.size and table.max() >= n_groups):
        raise ValueError(
            f"{str(path)!r} is inconsistent: n_groups={n_groups}, "
            f"centroids.shape={centroids.shape}, max group id={table.max() if table.size else None}."
        )
    return GroupTable(table, centroids, n_groups, report)
