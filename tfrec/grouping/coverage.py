"""Top-k group coverage: how many of a user's most recent groups a grouped model must keep.

DMGIN keeps the k groups with the most recent behavior (eq. 6). When the candidate's own group is
not among them, the long-term branch cannot see the user's history in that group; on a lifelong
history with many groups a fixed small k drops it often. ``target_group_ranks`` measures, for every
example, the recency rank of the target item's group among the groups of the user's history as
``BehaviorGrouping`` orders them (most recent behavior first; equal timestamps: lower group id
first); ``choose_top_k`` sizes k from those ranks.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

import numpy as np

from tfrec.data.spec import HIST_LENGTH


@dataclasses.dataclass(frozen=True)
class TopKCoverage:
    """A chosen k and what it covers.

    Attributes:
      k: groups kept.
      coverage: share of the examples whose target group is among the k most recent groups.
      present: share of the examples whose target group is anywhere in the history (the most any
        k can cover).
      target: the coverage of ``present`` k was sized for (``choose_top_k``), or None when k was given.
      examples: examples measured.
      groups_p50, groups_p95: percentiles of the number of distinct groups per history.
    """

    k: int
    coverage: float
    present: float
    target: Optional[float]
    examples: int
    groups_p50: float
    groups_p95: float

    def line(self) -> str:
        how = f"sized for {self.target:.0%} of the examples whose target group is in the history" \
            if self.target is not None else "given"
        return (f"top_k_groups={self.k} ({how}): the target's group is among the kept groups for "
                f"{self.coverage:.1%} of {self.examples} training examples ({self.present:.1%} have it anywhere "
                f"in the history; distinct groups per history p50 {self.groups_p50:.0f}, p95 {self.groups_p95:.0f})")


def target_group_ranks(batches: Iterable[dict], item_to_group: np.ndarray):
    """Per example: the target group's recency rank (0 = the group of the most recent behavior;
    -1 = not in the history) and the number of distinct groups in the history.

    ``batches``: feature dicts with ``item_id`` ``[B]``, ``hist_item_id`` / ``hist_timestamp``
    ``[B, L]`` (oldest first) and ``hist_length`` ``[B]`` (numpy or eager tensors).
    ``item_to_group``: ``[n_items]`` group ids (ids outside the table are the unknown group 0).
    """
    table = np.asarray(item_to_group)
    ranks, counts = [], []

    def group_of(items):
        items = np.asarray(items, np.int64)
        inside = (items >= 0) & (items < len(table))
        return np.where(inside, table[np.clip(items, 0, len(table) - 1)], 0)

    for features in batches:
        targets = group_of(np.asarray(features["item_id"]))
        items = np.asarray(features["hist_item_id"])
        stamps = np.asarray(features["hist_timestamp"], np.int64)
        lengths = np.minimum(np.asarray(features[HIST_LENGTH]), items.shape[1])
        for target, row_items, row_ts, n in zip(targets, items, stamps, lengths):
            groups = group_of(row_items[:n])
            if not len(groups):
                ranks.append(-1)
                counts.append(0)
                continue
            ids, inverse = np.unique(groups, return_inverse=True)
            newest = np.full(len(ids), np.iinfo(np.int64).min)
            np.maximum.at(newest, inverse, row_ts[:n])
            counts.append(len(ids))
            where = np.searchsorted(ids, target)
            if where >= len(ids) or ids[where] != target:
                ranks.append(-1)
                continue
            t = newest[where]
            ranks.append(int(np.sum(newest > t) + np.sum((newest == t) & (ids < target))))
    return np.asarray(ranks, np.int64), np.asarray(counts, np.int64)


def coverage_at(ranks: np.ndarray, counts: np.ndarray, k: int, target: Optional[float] = None) -> TopKCoverage:
    """The coverage of a given k over measured ``ranks`` / ``counts``."""
    n = max(len(ranks), 1)
    return TopKCoverage(k=int(k), coverage=float(np.sum((ranks >= 0) & (ranks < k)) / n),
                        present=float(np.sum(ranks >= 0) / n), target=target, examples=len(ranks),
                        groups_p50=float(np.percentile(counts, 50)) if len(counts) else 0.0,
                        groups_p95=float(np.percentile(counts, 95)) if len(counts) else 0.0)


def choose_top_k(ranks: np.ndarray, counts: np.ndarray, target: float = 0.95, max_k: int = 128,
                 min_k: int = 4) -> TopKCoverage:
    """The smallest k in ``[min_k, max_k]`` whose kept groups hold the target's group for at least
    ``target`` of the examples that have it in their history at all (``max_k`` when no k up to it
    does; ``min_k`` when no example has it). Needs ``1 <= min_k <= max_k``."""
    if not 1 <= min_k <= max_k:
        raise ValueError(f"choose_top_k needs 1 <= min_k <= max_k. Received: min_k={min_k}, max_k={max_k}")
    present = ranks[ranks >= 0]
    k = min_k
    if len(present):  # the ceil(target * n)-th smallest rank + 1 keeps that many of the n examples
        needed = int(np.ceil(target * len(present) - 1e-9))
        k = int(np.clip(np.sort(present)[max(needed, 1) - 1] + 1, min_k, max_k))
    return coverage_at(ranks, counts, k, target)
