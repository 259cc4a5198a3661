"""SIREN's soft GSU over long histories with ScaNN, outside the SavedModel.

SIREN (§4.2, eq. 7) retrieves, for each target item ``t``, the top-K behaviors of the user's
history by cosine similarity of multimodal item vectors: ``S_sim = Top-K_i sim(e_i^mm, e_t^mm)``.
In the graph this is a ``matmul`` + ``top_k`` (stock ops, served by TF Serving). For histories of
10^4 - 10^5 behaviors that costs ``O(L * D)`` per candidate, so this module serves the same
retrieval from a per-user ScaNN index (asymmetric hashing + exact reordering, behind a
partitioning tree from 100k distinct behaviors on), in Python, next to the model: stock TF
Serving cannot load ScaNN's ops.

* ``normalize`` / ``exact_top_k``: the numpy reference. Cosine = dot product of L2-normalised
  vectors; results sorted by score, **ties broken toward the more recent behavior** (the larger
  position: histories are stored oldest first); invalid behaviors are never returned; fewer than
  ``k`` valid behaviors -> positions ``-1`` and scores ``-inf`` at the end.
* ``ScannConfig``: the index settings; ``UserHistoryIndex``: one user's index, exact numpy search
  below ``exact_threshold`` behaviors, ScaNN above.
* ``ScannGSU``: the item vector table and the per-user retrieval, plus ``retrieve_before``, the
  offline (training-data) GSU that cuts each example's history at its request time.

Every result is ``(positions int64 [C, k], scores float32 [C, k])``: positions index the user's
history (oldest first), so the caller gathers ids, timestamps and side features from them.

Repeated behaviors (the same item clicked again: identical vectors) are the common ties. A BLAS
matmul does not give identical columns identical scores (the rounding depends on the column's
place in the kernel's blocking: 1-ulp differences), so both paths score each *distinct* vector
once and copy the score to its positions; the ScaNN index holds the distinct vectors only. The
ScaNN path rescores what ScaNN returns in float32 and orders it like the reference, so scores
agree with ``exact_top_k`` to float32 rounding on the behaviors both return.

ScaNN (and with it TensorFlow) is imported only when a ScaNN index is built, never by
``import tfrec`` or ``import tfrec.retrieval``.
"""
from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from typing import Any

import numpy as np

# Below this many distinct vectors the ScaNN path uses ScaNN's brute force: asymmetric hashing
# trains 16 centers per block (it fails under 16 points) and needs far more to train them well.
_MIN_AH_SIZE = 256
# Similarities (or gathered vector entries) computed at once: 64 MiB of float32.
_CHUNK_ELEMENTS = 1 << 24
# ScaNN's build-time neighbor counts; every search passes its own.
_BUILD_K = 10

TopK = tuple[np.ndarray, np.ndarray]


def _check_k(k: Any, name: str = "k") -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be an integer >= 1. Received: {name}={k!r}")
    return int(k)


def _as_matrix(name: str, value: Any, dim: int | None = None) -> np.ndarray:
    """``value`` as a finite float32 ``[N, D]`` array (D = ``dim`` when given), or ValueError."""
    array = np.asarray(value)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [N, D] array. Received: {name}.shape={array.shape}")
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric. Received: {name}.dtype={array.dtype}")
    if array.shape[1] < 1:
        raise ValueError(f"{name} must have D >= 1 columns. Received: {name}.shape={array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"{name} must have D = {dim} columns (the behavior vectors' D). "
                         f"Received: {name}.shape={array.shape}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite (no NaN or inf).")
    return array


def _as_ids(name: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array. Received: {name}.shape={array.shape}")
    if array.size and array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers. Received: {name}.dtype={array.dtype}")
    return array.astype(np.int64, copy=False)


def normalize(vectors: Any) -> np.ndarray:
    """L2-normalises the rows of ``vectors``; zero rows stay zero.

    Args:
      vectors: array ``[N, D]``.

    Returns:
      float32 ``[N, D]``, each nonzero row with unit norm, so dot products are cosines (SIREN
      eq. 4 / 7). A zero row (an item without a multimodal vector) has cosine 0 with everything.
    """
    from tfrec.data.item_content import normalize_rows  # numpy only: the one normalisation the models use too

    return normalize_rows(_as_matrix("vectors", vectors))


class _Distinct:
    """The distinct rows of normalised ``[L, D]`` vectors and where each occurs.

    Attributes:
      vectors: float32 ``[U, D]``, the distinct rows (the input itself when all are distinct).
      inverse: int64 ``[L]``, the distinct row of each position; None when all are distinct.
      occurrences / starts: positions grouped by distinct row, ascending within a group: row ``u``
        occurs at ``occurrences[starts[u]:starts[u + 1]]`` (None when all are distinct).
    """

    def __init__(self, vectors: np.ndarray):
        self.length = vectors.shape[0]
        self.vectors, self.inverse, self.occurrences, self.starts = vectors, None, None, None
        if self.length < 2:
            return
        canonical = vectors + np.float32(0)  # -0.0 -> 0.0, so rows equal in value are equal in bytes
        rows = canonical.view(np.dtype((np.void, vectors.dtype.itemsize * vectors.shape[1]))).ravel()
        _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
        if first.shape[0] == self.length:
            return
        self.vectors, self.inverse = vectors[first], inverse.reshape(-1).astype(np.int64)
        self.occurrences = np.argsort(self.inverse, kind="stable")
        self.starts = np.concatenate([[0], np.cumsum(np.bincount(self.inverse, minlength=first.shape[0]))])

    def full(self) -> np.ndarray:
        """float32 ``[L, D]``, the vectors by position."""
        return self.vectors if self.inverse is None else self.vectors[self.inverse]

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.vectors, self.inverse, self.occurrences, self.starts) if a is not None)

    def expand(self, ids: np.ndarray, scores: np.ndarray, k: int) -> TopK:
        """Distinct-row results ``[C, m]`` (``-1`` = none) -> the top-k positions ``[C, k]`` they
        cover, sorted by score then position (descending), ``-1`` / ``-inf`` padded."""
        if self.inverse is None:
            return _pad_top(*_sort_top(np.where(ids >= 0, ids, -1), np.where(ids >= 0, scores, -np.inf)), k)
        c, m = ids.shape
        found = (ids >= 0).ravel()
        rows, ids, scores = np.repeat(np.arange(c), m)[found], ids.ravel()[found], scores.ravel()[found]
        counts = self.starts[ids + 1] - self.starts[ids]
        total = int(counts.sum())
        # One entry per occurrence: [n] -> [sum(counts)].
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        positions = self.occurrences[np.repeat(self.starts[ids], counts) + offsets]
        rows, scores = np.repeat(rows, counts), np.repeat(scores, counts)
        order = np.lexsort((-positions, -scores, rows))
        rows, positions, scores = rows[order], positions[order], scores[order]
        rank = np.arange(total) - np.searchsorted(rows, rows, side="left")
        keep = rank < k
        out_positions = np.full((c, k), -1, np.int64)
        out_scores = np.full((c, k), -np.inf, np.float32)
        out_positions[rows[keep], rank[keep]] = positions[keep]
        out_scores[rows[keep], rank[keep]] = scores[keep]
        return out_positions, out_scores


def _sort_top(positions: np.ndarray, scores: np.ndarray) -> TopK:
    """Sorts each row by score descending, then position descending (ties -> more recent)."""
    order = np.lexsort((-positions, -scores), axis=-1)
    return np.take_along_axis(positions, order, 1), np.take_along_axis(scores, order, 1)


def _pad_top(positions: np.ndarray, scores: np.ndarray, k: int) -> TopK:
    """Sorted ``[C, k']`` (k' <= k, missing entries at ``-inf``) -> ``[C, k]``, ``-1`` / ``-inf`` padded."""
    c, found = positions.shape
    out_positions = np.full((c, k), -1, np.int64)
    out_scores = np.full((c, k), -np.inf, np.float32)
    ok = np.isfinite(scores)
    out_positions[:, :found] = np.where(ok, positions, -1)
    out_scores[:, :found] = np.where(ok, scores, -np.inf)
    return out_positions, out_scores


def _row_chunks(rows: int, per_row: int) -> list[slice]:
    """Slices of at most ``_CHUNK_ELEMENTS // per_row`` rows (at least one) covering ``rows``."""
    step = max(1, _CHUNK_ELEMENTS // max(1, per_row))
    return [slice(start, start + step) for start in range(0, rows, step)]


def _cosines(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """float32 ``[C, U]`` dot products computed in float64 and rounded, as ``TwoStageModel.cosine``
    does in graph: two float32 matmuls can round a near-tie differently (1 ulp), float64 products
    rounded to float32 agree, so this reference and the SavedModel's GSU keep the same behaviors."""
    return (queries.astype(np.float64) @ vectors.T.astype(np.float64)).astype(np.float32)


def _exact_chunk(distinct: _Distinct, queries: np.ndarray, kk: int, valid: np.ndarray | None) -> TopK:
    """Top-kk (kk <= L) positions of one chunk of queries, sorted, invalid entries at ``-inf``."""
    length = distinct.length
    sim = _cosines(queries, distinct.vectors)  # [C, D] x [D, U] -> [C, U]
    if distinct.inverse is not None:
        sim = np.take(sim, distinct.inverse, axis=1)  # [C, U] -> [C, L]: equal vectors, equal scores
    if valid is not None:
        sim[np.broadcast_to(~valid, sim.shape)] = -np.inf
    top = np.argpartition(sim, length - kk, axis=1)[:, length - kk:]  # [C, kk], O(L) per row
    top_sim = np.take_along_axis(sim, top, 1)
    # argpartition keeps an arbitrary subset of the behaviors tied with the k-th score; redo the
    # rows where some were left out, keeping the most recent ones. A -inf k-th score means every
    # valid behavior is already in (the -inf ones are dropped by _pad_top).
    kth = top_sim.min(axis=1)
    left_out = (sim == kth[:, None]).sum(1) != (top_sim == kth[:, None]).sum(1)
    for row in np.flatnonzero(left_out & np.isfinite(kth)):
        above = np.flatnonzero(sim[row] > kth[row])
        tied = np.flatnonzero(sim[row] == kth[row])
        top[row] = np.concatenate([above, tied[len(tied) - (kk - len(above)):]])
        top_sim[row] = sim[row, top[row]]
    return _sort_top(top.astype(np.int64), top_sim)


def _exact_search(distinct: _Distinct, queries: np.ndarray, k: int, valid: np.ndarray | None = None,
                  cut: np.ndarray | None = None) -> TopK:
    """Exact top-k on normalised, validated float32 inputs; one matmul per chunk of queries (a
    single one up to ``_CHUNK_ELEMENTS`` similarities, e.g. 100 queries x 100,000 behaviors).
    ``valid`` is ``[L]`` or ``[C, L]``; ``cut`` ``[C]`` hides positions ``>= cut`` (per query)."""
    c, length = queries.shape[0], distinct.length
    kk = min(k, length)
    positions = np.zeros((c, kk), np.int64)
    scores = np.zeros((c, kk), np.float32)
    if kk:
        for rows in _row_chunks(c, length):
            chunk_valid = valid[rows] if valid is not None and valid.ndim == 2 else valid
            if cut is not None:
                chunk_valid = np.arange(length)[None, :] < cut[rows, None]  # [C', L]
            positions[rows], scores[rows] = _exact_chunk(distinct, queries[rows], kk, chunk_valid)
    return _pad_top(positions, scores, k)


def exact_top_k(behavior_vectors: Any, queries: Any, k: int, valid: Any = None) -> TopK:
    """Exact top-k behaviors by cosine similarity (SIREN eq. 7), the numpy reference.

    One ``[C, D] x [D, U]`` matmul over the U distinct behavior vectors for all queries (chunked
    past 2^24 similarities), then ``argpartition`` per row (O(L), not a full sort), then a sort
    of the k kept.

    Args:
      behavior_vectors: array ``[L, D]``, one user's behaviors, oldest first (any norm).
      queries: array ``[C, D]``, the candidate (target) items' vectors (any norm).
      k: int >= 1, behaviors per query (may exceed L).
      valid: optional bool ``[L]`` or ``[C, L]``; False marks padding / behaviors a query must not
        see (never returned). Default None: all valid.

    Returns:
      ``(positions, scores)``: int64 ``[C, k]`` positions into ``behavior_vectors`` and float32
      ``[C, k]`` cosines, sorted by score descending, ties toward the larger (more recent)
      position. With fewer than k valid behaviors the tail is ``-1`` / ``-inf``.

    Raises:
      ValueError: wrong dims, D mismatch, non-finite values, k < 1, or a ``valid`` of wrong shape.
    """
    vectors = normalize(_as_matrix("behavior_vectors", behavior_vectors))
    queries = _as_matrix("queries", queries, vectors.shape[1])
    k = _check_k(k)
    mask = None
    if valid is not None:
        mask = np.asarray(valid)
        length = vectors.shape[0]
        if mask.dtype != bool or mask.shape not in ((length,), (queries.shape[0], length)):
            raise ValueError(f"valid must be a bool array of shape [L] = ({length},) or [C, L] = "
                             f"({queries.shape[0]}, {length}). Received: valid.shape={mask.shape}, "
                             f"valid.dtype={mask.dtype}")
    return _exact_search(_Distinct(vectors), normalize(queries), k, mask)


@dataclasses.dataclass(frozen=True)
class ScannConfig:
    """Settings of a ``UserHistoryIndex`` (ours: SIREN names no retrieval engine or settings).

    Three regimes by history size, as ScaNN's guide advises (brute force for small sets, AH +
    rescoring below ~100k points, a partitioning tree above): exact numpy below
    ``exact_threshold`` behaviors; asymmetric hashing (AH) over every distinct vector + exact
    reordering below ``tree_threshold`` distinct vectors; tree + AH + reordering above. The
    defaults follow ScaNN's rules of thumb (``num_leaves ~ sqrt(n)``, 2 dimensions per AH block,
    anisotropic threshold 0.2 on normalised data); the search breadth (half the leaves,
    reordering 20 k) was chosen on ``bench/scann_gsu.py``'s clustered histories (D = 64, k = 50,
    100 candidates): at L = 100,000 recall@50 vs exact was 0.97 - 1.0 per user (0.91 - 1.0 with
    30% of the leaves, at about the same speed) at 8 - 15x the queries/s of exact numpy search,
    measured on a loaded 2-core box. On those histories a tree below 100k loses recall for
    nothing (L = 30,000: recall 0.77 - 0.90 with 20% of 173 leaves searched, 0.96 - 0.97 for AH
    alone at the same reordering).

    Attributes:
      exact_threshold: histories with fewer behaviors use exact numpy search (``exact_top_k``),
        no ScaNN. Measured on a 2-core box (D = 64, 100 candidates, k = 50): at 2,000 behaviors
        exact search takes ~5 ms and ScaNN ~4 ms after a ~0.1 s build; at 5,000, 11 ms vs 6 ms
        after 0.3 s. 0 forces ScaNN for every non-empty history; a huge value forces exact.
      exhaustive: ScaNN brute force (exact float32 scores, no tree, no hashing); for tests.
      tree_threshold: histories with at least this many distinct vectors get the tree; fewer,
        AH over all of them. 0 forces the tree.
      num_leaves: tree partitions; None = ``round(sqrt(U))`` for U distinct behavior vectors.
      leaves_to_search_fraction: fraction of the leaves searched per query (at least 1 leaf).
      dimensions_per_block: asymmetric-hashing dimensions per 4-bit code block.
      anisotropic_quantization_threshold: ScaNN's anisotropic (score-aware) quantization
        threshold; ``float("nan")`` for plain product quantization.
      reorder_factor: AH candidates rescored exactly by ScaNN = ``reorder_factor * k``.
      training_threads: ScaNN index-building threads (0 = ScaNN's choice, all cores).
    """

    exact_threshold: int = 2000
    exhaustive: bool = False
    tree_threshold: int = 100_000
    num_leaves: int | None = None
    leaves_to_search_fraction: float = 0.5
    dimensions_per_block: int = 2
    anisotropic_quantization_threshold: float = 0.2
    reorder_factor: int = 20
    training_threads: int = 0

    def __post_init__(self):
        for name in ("exact_threshold", "tree_threshold", "training_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"ScannConfig.{name} must be >= 0. Received: {name}={getattr(self, name)!r}")
        for name in ("dimensions_per_block", "reorder_factor"):
            if getattr(self, name) < 1:
                raise ValueError(f"ScannConfig.{name} must be >= 1. Received: {name}={getattr(self, name)!r}")
        if self.num_leaves is not None and self.num_leaves < 1:
            raise ValueError(f"ScannConfig.num_leaves must be None or >= 1. Received: num_leaves={self.num_leaves!r}")
        if not 0 < self.leaves_to_search_fraction <= 1:
            raise ValueError("ScannConfig.leaves_to_search_fraction must be in (0, 1]. "
                             f"Received: leaves_to_search_fraction={self.leaves_to_search_fraction!r}")


def _config(config: ScannConfig | None, overrides: dict) -> ScannConfig:
    config = ScannConfig() if config is None else config
    return dataclasses.replace(config, **overrides) if overrides else config


class UserHistoryIndex:
    """One user's behavior vectors, searchable by cosine similarity (SIREN eq. 7).

    Histories shorter than ``config.exact_threshold`` are searched exactly (``exact_top_k``);
    longer ones through a ScaNN index over the distinct normalised vectors with dot product:
    asymmetric hashing of every vector, or, from ``tree_threshold`` distinct vectors on, of the
    vectors in the tree partitions searched (``num_leaves``, ``leaves_to_search_fraction`` of
    them), then exact float32 reordering of ``reorder_factor * k`` candidates.
    ``exhaustive=True`` uses ScaNN's brute force instead, as does a ScaNN index of fewer than
    256 distinct vectors (AH trains 16 centers per block). What ScaNN returns is rescored here in float32, expanded to every
    position of each returned vector and ordered like ``exact_top_k``. A query for which ScaNN
    returns fewer than ``min(k, U)`` vectors (its searched leaves hold fewer) is answered exactly.

    Args:
      behavior_vectors: array ``[L, D]`` (L may be 0), oldest first, e.g. gathered from the item
        table; normalised here (zero rows stay zero: cosine 0 with every candidate).
      config: ``ScannConfig``; default ``ScannConfig()``.
      **overrides: ``ScannConfig`` fields replacing the config's (``exhaustive=True``, ...).

    Attributes:
      config: the ``ScannConfig`` in use.
      method: ``"exact"``, ``"scann_brute_force"``, ``"scann_ah"`` or ``"scann_tree_ah"``.
      uses_scann: whether searches go through ScaNN.
      num_leaves / leaves_to_search: the tree's settings (None without a tree).
    """

    def __init__(self, behavior_vectors: Any, config: ScannConfig | None = None, **overrides: Any):
        self.config = _config(config, overrides)
        self._distinct = _Distinct(normalize(_as_matrix("behavior_vectors", behavior_vectors)))
        self.dim = self._distinct.vectors.shape[1]
        self.uses_scann = self.length > 0 and self.length >= self.config.exact_threshold
        self.method = "exact"
        self.num_leaves: int | None = None
        self.leaves_to_search: int | None = None
        self._searcher = self._build() if self.uses_scann else None

    @property
    def length(self) -> int:
        """L, the number of behaviors."""
        return self._distinct.length

    @property
    def distinct(self) -> int:
        """U, the number of distinct behavior vectors (what ScaNN indexes)."""
        return self._distinct.vectors.shape[0]

    @property
    def vectors(self) -> np.ndarray:
        """float32 ``[L, D]``, the normalised behavior vectors by position."""
        return self._distinct.full()

    def _build(self):
        import scann  # lazy: loads TensorFlow and ScaNN's ops

        cfg, size = self.config, self.distinct
        builder = scann.scann_ops_pybind.builder(self._distinct.vectors, _BUILD_K, "dot_product")
        if cfg.exhaustive or size < _MIN_AH_SIZE:
            self.method = "scann_brute_force"
            builder = builder.score_brute_force()
        else:
            self.method = "scann_ah"
            if size >= cfg.tree_threshold:
                self.method = "scann_tree_ah"
                self.num_leaves = min(size, cfg.num_leaves or round(math.sqrt(size)))
                self.leaves_to_search = max(1, math.ceil(cfg.leaves_to_search_fraction * self.num_leaves))
                builder = builder.tree(self.num_leaves, self.leaves_to_search, training_sample_size=size,
                                       spherical=True)
            builder = builder.score_ah(
                cfg.dimensions_per_block, anisotropic_quantization_threshold=cfg.anisotropic_quantization_threshold,
                training_sample_size=size,
            ).reorder(cfg.reorder_factor * _BUILD_K)
        return builder.set_n_training_threads(cfg.training_threads).build()

    def search(self, queries: Any, k: int) -> TopK:
        """Top-k behaviors per query by cosine similarity.

        Args:
          queries: array ``[C, D]``, candidate item vectors (any norm; normalised here).
          k: int >= 1; may exceed L.

        Returns:
          ``(positions, scores)``: int64 ``[C, k]`` positions into the history and float32
          ``[C, k]`` cosines, sorted by score descending, ties toward the more recent behavior;
          ``-1`` / ``-inf`` past the ``min(k, L)`` found.
        """
        queries = normalize(_as_matrix("queries", queries, self.dim))
        k = _check_k(k)
        if self._searcher is None or queries.shape[0] == 0:
            return _exact_search(self._distinct, queries, k)
        positions = np.zeros((queries.shape[0], k), np.int64)
        scores = np.zeros((queries.shape[0], k), np.float32)
        short = []
        for rows in _row_chunks(queries.shape[0], min(k, self.distinct) * self.dim):
            ids, id_scores = self._search_scann(queries[rows], min(k, self.distinct))
            positions[rows], scores[rows] = self._distinct.expand(ids, id_scores, k)
            short.append(rows.start + np.flatnonzero((ids < 0).any(axis=1)))
        short = np.concatenate(short)
        if short.size:  # ScaNN's searched leaves held fewer than asked for: answer exactly
            positions[short], scores[short] = _exact_search(self._distinct, queries[short], k)
        return positions, scores

    def _search_scann(self, queries: np.ndarray, kk: int) -> TopK:
        """ScaNN's top-kk distinct rows (kk <= U) of normalised queries, ``-1`` where it found
        fewer, and their float32 cosines."""
        if self.method == "scann_brute_force":
            ids, dist = self._searcher.search_batched(queries, final_num_neighbors=kk)
        else:
            ids, dist = self._searcher.search_batched(
                queries, final_num_neighbors=kk, leaves_to_search=self.leaves_to_search,  # None without a tree
                pre_reorder_num_neighbors=min(self.distinct, self.config.reorder_factor * kk))
        missing = np.isnan(dist)  # ScaNN pads with NaN
        ids = np.where(missing, -1, ids).astype(np.int64)  # [C, kk]
        # [C, kk, D] . [C, D] -> [C, kk]: float32 cosines like the exact path's.
        scores = np.einsum("ckd,cd->ck", self._distinct.vectors[np.maximum(ids, 0)].astype(np.float64),
                           queries.astype(np.float64)).astype(np.float32)
        return ids, scores

    def memory_bytes(self) -> int:
        """Bytes held for this user: the distinct normalised float32 vectors and position maps,
        plus, with ScaNN, the size of its serialized assets (its float32 reorder copy, 4-bit
        codes, tree, ids), measured by serializing them to a temporary directory: an estimate."""
        total = self._distinct.nbytes()
        if self._searcher is not None:
            with tempfile.TemporaryDirectory() as directory:
                self._searcher.serialize(directory)
                total += sum(os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory))
        return total


class ScannGSU:
    """SIREN's soft GSU (eq. 7) over an item vector table, one ``UserHistoryIndex`` per user.

    Serving: ``index = gsu.index(history_item_ids)`` once per user (cacheable), then
    ``gsu.retrieve(index, candidate_item_ids, k)`` per request. Training data:
    ``gsu.retrieve_before(...)`` cuts each example's history at its request time.

    Args:
      item_vectors: array ``[n_items, D]``, the multimodal vector of item id ``i`` in row ``i``;
        normalised once here. Ids outside ``[0, n_items)`` get the zero vector (cosine 0).
      config: ``ScannConfig`` for the per-user indexes; default ``ScannConfig()``.
      **overrides: ``ScannConfig`` fields replacing the config's.

    Attributes:
      item_vectors: float32 ``[n_items, D]``, normalised.
      config: the ``ScannConfig`` in use.
    """

    def __init__(self, item_vectors: Any, config: ScannConfig | None = None, **overrides: Any):
        self.config = _config(config, overrides)
        self.item_vectors = normalize(_as_matrix("item_vectors", item_vectors))

    def vectors(self, item_ids: Any) -> np.ndarray:
        """float32 ``[N, D]`` normalised vectors of ``item_ids`` ``[N]`` (zero for unknown ids)."""
        return self._lookup("item_ids", item_ids)

    def _lookup(self, name: str, item_ids: Any) -> np.ndarray:
        ids = _as_ids(name, item_ids)
        known = (ids >= 0) & (ids < self.item_vectors.shape[0])
        out = np.zeros((ids.shape[0], self.item_vectors.shape[1]), np.float32)
        out[known] = self.item_vectors[ids[known]]
        return out

    def index(self, history_item_ids: Any) -> UserHistoryIndex:
        """A ``UserHistoryIndex`` over one user's history ``[L]`` item ids, oldest first."""
        return UserHistoryIndex(self._lookup("history_item_ids", history_item_ids), self.config)

    def retrieve(self, index: UserHistoryIndex, candidate_item_ids: Any, k: int) -> TopK:
        """Top-k behaviors of ``index``'s history for each candidate ``[C]`` item id.

        Returns:
          ``(positions, scores)``, int64 / float32 ``[C, k]`` as ``UserHistoryIndex.search``.
        """
        if not isinstance(index, UserHistoryIndex):
            raise TypeError(f"index must be a UserHistoryIndex. Received: index={type(index).__name__}")
        return index.search(self._lookup("candidate_item_ids", candidate_item_ids), k)

    def retrieve_before(self, history_item_ids: Any, history_timestamps: Any, target_item_ids: Any,
                        request_timestamps: Any, k: int, overfetch: int = 4) -> TopK:
        """Offline GSU for training data: per example, the top-k behaviors strictly before its request.

        Example ``e`` sees the behaviors with ``timestamp < request_timestamps[e]``: the first
        ``cut_e`` of the history (as ``tfrec.data.dataset.cut_and_pad`` cuts it). One index is
        built over the whole history; with ScaNN, each target searches it for
        ``overfetch * k`` behaviors and keeps those at positions ``< cut_e``, in order. An example
        for which that leaves fewer than ``min(k, cut_e)`` behaviors (a cut early in the history,
        or a target whose neighbors are mostly later) is answered exactly over its first ``cut_e``
        behaviors, so every example gets ``min(k, cut_e)`` behaviors. Exact indexes (short
        histories) answer every example exactly with one masked matmul.

        Args:
          history_item_ids: int ``[L]``, one user's behaviors, oldest first.
          history_timestamps: int ``[L]``, non-decreasing.
          target_item_ids: int ``[E]``, the examples' target items.
          request_timestamps: int ``[E]``.
          k: int >= 1.
          overfetch: int >= 1, ScaNN results per target as a multiple of k. Default 4.

        Returns:
          ``(positions, scores)``: int64 / float32 ``[E, k]`` into the full history, every
          position ``< cut_e``; ``-1`` / ``-inf`` past the ``min(k, cut_e)`` found.
        """
        k = _check_k(k)
        overfetch = _check_k(overfetch, "overfetch")
        history = _as_ids("history_item_ids", history_item_ids)
        timestamps = _as_ids("history_timestamps", history_timestamps)
        requests = _as_ids("request_timestamps", request_timestamps)
        queries = self._lookup("target_item_ids", target_item_ids)
        if timestamps.shape != history.shape:
            raise ValueError("history_timestamps must have one entry per behavior. Received: "
                             f"history_timestamps.shape={timestamps.shape}, history_item_ids.shape={history.shape}")
        if requests.shape[0] != queries.shape[0]:
            raise ValueError("request_timestamps must have one entry per target. Received: "
                             f"request_timestamps.shape={requests.shape}, {queries.shape[0]} target_item_ids")
        if np.any(np.diff(timestamps) < 0):
            raise ValueError("history_timestamps must be non-decreasing (histories are stored oldest first).")
        cut = np.searchsorted(timestamps, requests, side="left")  # [E] behaviors strictly before
        index = self.index(history)
        if not index.uses_scann:
            return _exact_search(index._distinct, queries, k, cut=cut)
        found, found_scores = index.search(queries, overfetch * k)  # [E, overfetch * k]
        keep = (found >= 0) & (found < cut[:, None])
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept first, in score order
        positions = np.where(np.take_along_axis(keep, order, 1), np.take_along_axis(found, order, 1), -1)
        scores = np.where(positions >= 0, np.take_along_axis(found_scores, order, 1), -np.inf).astype(np.float32)
        short = np.flatnonzero((positions >= 0).sum(1) < np.minimum(k, cut))
        if short.size:
            positions[short], scores[short] = _exact_search(index._distinct, queries[short], k, cut=cut[short])
        return positions, scores
