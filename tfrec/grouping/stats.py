"""Sequence lengths before and after grouping (DMGIN's "tens of thousands -> hundreds" claim),
and what SIREN's hard GSU (behaviors sharing the target's Semantic ID prefix) keeps.

DMGIN regroups a user's lifelong behaviors by item group, so the inter-group model attends over
groups, not behaviors. ``grouping_stats`` measures that on a data set: per user, the number of
behaviors (the raw sequence length) against the number of distinct groups they fall into (the
grouped sequence length) and the size of the largest group (the longest intra-group sequence).
"""
from __future__ import annotations

from typing import Dict

import numpy as np

PERCENTILES = (50, 90, 99, 100)


def _summary(values: np.ndarray) -> Dict[str, float]:
    if not len(values):
        return {"mean": 0.0, **{f"p{p}": 0.0 for p in PERCENTILES}}
    out = {"mean": round(float(np.mean(values)), 2)}
    out.update({f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES})
    return out


def grouping_stats(row_splits: np.ndarray, item_ids: np.ndarray, item_to_group: np.ndarray) -> Dict[str, object]:
    """Per-user sequence statistics in CSR form.

    Args:
      row_splits: ``[U + 1]`` offsets; user ``u`` owns ``item_ids[row_splits[u]:row_splits[u+1]]``
        (``tfrec.data.dataset.UserHistories.row_splits``).
      item_ids: ``[N]`` behavior item ids.
      item_to_group: ``[n_items]`` group per item (0 = unknown); ids outside it count as group 0.

    Returns:
      ``users``, ``behaviors`` and, each as mean / p50 / p90 / p99 / p100 over users with at least
      one behavior: ``raw_length`` (behaviors), ``groups_per_user`` (distinct groups),
      ``largest_group`` (behaviors in the user's biggest group); plus ``compression`` =
      mean raw length / mean groups per user.
    """
    row_splits = np.asarray(row_splits, np.int64)
    item_ids = np.asarray(item_ids, np.int64)
    table = np.asarray(item_to_group, np.int64)
    if row_splits.ndim != 1 or row_splits[0] != 0 or row_splits[-1] != len(item_ids) or np.any(np.diff(row_splits) < 0):
        raise ValueError("row_splits must start at 0, be non-decreasing and end at len(item_ids)")
    known = (item_ids >= 0) & (item_ids < len(table))
    groups = np.where(known, table[np.clip(item_ids, 0, len(table) - 1)], 0)
    lengths = np.diff(row_splits)
    user = np.repeat(np.arange(len(lengths)), lengths)
    n_groups = int(groups.max()) + 1 if len(groups) else 1
    pair, counts = np.unique(user * n_groups + groups, return_counts=True)
    pair_user = pair // n_groups
    distinct = np.bincount(pair_user, minlength=len(lengths))
    largest = np.zeros(len(lengths), np.int64)
    np.maximum.at(largest, pair_user, counts)
    active = lengths > 0
    raw, per_user = _summary(lengths[active]), _summary(distinct[active])
    return {"users": int(active.sum()), "behaviors": int(len(item_ids)), "raw_length": raw,
            "groups_per_user": per_user, "largest_group": _summary(largest[active]),
            "compression": round(raw["mean"] / per_user["mean"], 2) if per_user["mean"] else None}


def format_grouping_stats(stats: Dict[str, object]) -> str:
    rows = [("raw sequence length (behaviors)", stats["raw_length"]),
            ("grouped sequence length (distinct groups)", stats["groups_per_user"]),
            ("largest group (behaviors)", stats["largest_group"])]
    head = "| per user | mean | " + " | ".join(f"p{p}" for p in PERCENTILES) + " |"
    lines = [f"{stats['users']} users, {stats['behaviors']} behaviors; mean raw / grouped length = "
             f"{stats['compression']}x", "", head, "|---" * (2 + len(PERCENTILES)) + "|"]
    for name, s in rows:
        lines.append(f"| {name} | {s['mean']} | " + " | ".join(f"{s[f'p{p}']:g}" for p in PERCENTILES) + " |")
    return "\n".join(lines)


def hard_gsu_stats(batches, levels: int = 1) -> Dict[str, object]:
    """What SIREN's hard GSU keeps: behaviors whose Semantic ID prefix equals the target's.

    Args:
      batches: iterable of model-feature dicts (``make_dataset`` batches, numpy or tensors) with
        ``hist_semantic_id`` ``[B, L, M]``, ``item_semantic_id`` ``[B, M]`` and ``hist_length``.
      levels: the prefix length compared (1 = same level-1 code, SIREN's hard search).

    Returns:
      ``examples``; mean / percentiles over examples of ``history_length`` and ``kept`` (behaviors
      sharing the prefix); ``kept_fraction`` (kept / history behaviors, all examples pooled) and
      ``empty_fraction`` (examples with a non-empty history that keep nothing).
    """
    lengths, kept = [], []
    for features in batches:
        hist = np.asarray(features["hist_semantic_id"])[..., :levels]
        target = np.asarray(features["item_semantic_id"])[:, :levels]
        n = np.asarray(features["hist_length"])
        valid = np.arange(hist.shape[1])[None, :] < n[:, None]
        same = np.all(hist == target[:, None, :], axis=-1) & valid
        lengths.append(n)
        kept.append(same.sum(axis=1))
    lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    kept = np.concatenate(kept) if kept else np.zeros(0, np.int64)
    nonempty = lengths > 0
    return {"examples": int(len(lengths)), "levels": int(levels), "history_length": _summary(lengths),
            "kept": _summary(kept), "kept_fraction": float(kept.sum() / max(lengths.sum(), 1)),
            "empty_fraction": float(np.mean(kept[nonempty] == 0)) if nonempty.any() else 0.0}
