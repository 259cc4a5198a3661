"""CHIME's sample construction: one right-padded behavior sequence per user, cut at a time boundary.

CHIME (sec. 4.3, "Sample Construction") runs one causal forward pass per user sequence and puts a
loss at every position, instead of one sample per (history, target) pair. So the compressor's
data is simply each user's behaviors strictly before a boundary ``t`` (the representation set is
everything before ``t1``), the most recent ``max_length`` of them, oldest first, padded at the end.
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

PAD = -1


def user_sequences(histories, boundary: int, max_length: int, positive_types: Sequence[int],
                   positives_only: bool = False, users=None) -> Dict[str, np.ndarray]:
    """Each user's last ``max_length`` behaviors before ``boundary`` as ``[U, T]`` arrays.

    Args:
      histories: ``UserHistories`` (``tfrec.data.dataset.load_user_histories``); sequences sorted
        by time within a user (the loader checks it).
      boundary: epoch seconds; behaviors at or after it are left out.
      max_length: T.
      positive_types: behavior types labelled +1 (the others -1).
      positives_only: keep only the positive behaviors (LEARN's input).
      users: optional subset of user ids (default: every user with a history record).

    Returns:
      ``user_id`` int64 ``[U]``; ``item_id``, ``behavior_type`` int64 ``[U, T]`` (-1 padding);
      ``label`` float32 ``[U, T]`` in {-1, +1} (0 at padding); ``mask`` bool ``[U, T]``;
      ``length`` int64 ``[U]``. T is ``max_length`` (padding columns included, so batches stack).
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1. Received: {max_length}")
    seq = histories.sequences
    splits = np.asarray(histories.row_splits, np.int64)
    all_users = np.asarray(histories.user_ids, np.int64)
    rows = np.arange(len(all_users))
    if users is not None:
        lookup = {int(u): r for r, u in enumerate(all_users)}
        missing = [int(u) for u in users if int(u) not in lookup]
        if missing:
            raise ValueError(f"users without a history record: {missing[:5]} ({len(missing)} in all)")
        rows = np.asarray([lookup[int(u)] for u in users], np.int64)
    positive = np.asarray(sorted(set(int(t) for t in positive_types)), np.int64)
    n = len(rows)
    out = {"user_id": all_users[rows],
           "item_id": np.full((n, max_length), PAD, np.int64),
           "behavior_type": np.full((n, max_length), PAD, np.int64),
           "label": np.zeros((n, max_length), np.float32),
           "mask": np.zeros((n, max_length), bool),
           "length": np.zeros(n, np.int64)}
    timestamps, items, types = seq["hist_timestamp"], seq["hist_item_id"], seq["hist_behavior_type"]
    for i, r in enumerate(rows):
        start, end = splits[r], splits[r + 1]
        end = start + int(np.searchsorted(timestamps[start:end], boundary, side="left"))
        it, ty = items[start:end], types[start:end]
        if positives_only:
            keep = np.isin(ty, positive)
            it, ty = it[keep], ty[keep]
        it, ty = it[-max_length:], ty[-max_length:]
        k = len(it)
        out["item_id"][i, :k] = it
        out["behavior_type"][i, :k] = ty
        out["label"][i, :k] = np.where(np.isin(ty, positive), 1.0, -1.0)
        out["mask"][i, :k] = True
        out["length"][i] = k
    return out
