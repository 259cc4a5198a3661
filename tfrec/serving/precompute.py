"""Batch precompute of user state: every user of a user-history file through ``user_tower``.

The DMGIN deployment computes the candidate-independent part offline (or on a schedule) and keeps
it in a key-value store; online requests then only run ``score``. This job reads the users'
lifelong histories, cuts them at one request time (the data's "now" by default: one second after
its last behavior), runs them in batches through the ``user_tower`` signature of one pinned model
version over gRPC, and writes each user's state to the cache under ``(model, version, user_id)``.
"""
from __future__ import annotations

import time
from typing import Optional, Sequence

import numpy as np

from tfrec.serving.requests import stack_features, user_features


def data_now(histories) -> int:
    """One second after the last behavior in the histories (0 when there are none)."""
    ts = histories.sequences["hist_timestamp"]
    return int(ts.max()) + 1 if len(ts) else 0


def precompute_user_states(client, cache, histories, request_timestamp: Optional[int] = None,
                           batch_size: int = 64, user_ids: Optional[Sequence[int]] = None,
                           ttl_seconds: Optional[float] = None) -> dict:
    """Writes the state of every (or each listed) user to ``cache``; returns a summary dict.

    Args:
      client: a ``ServingClient`` (its model and version choice are used; one version for all).
      cache: a ``UserStateCache``.
      histories: ``tfrec.data.dataset.UserHistories``.
      request_timestamp: the time the states are computed for; default ``data_now(histories)``.
      batch_size: users per ``user_tower`` request.
      user_ids: a subset of users (default: all in ``histories``).
      ttl_seconds: TTL of the written entries (default: the cache's).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    now = data_now(histories) if request_timestamp is None else int(request_timestamp)
    ids = histories.user_ids if user_ids is None else np.asarray(user_ids, np.int64)
    version = client.served_version()
    started, written = time.perf_counter(), 0
    for begin in range(0, len(ids), batch_size):
        rows = []
        for uid in ids[begin:begin + batch_size]:
            history = histories.history(int(uid))
            segment = int(history.pop("user_segment"))
            rows.append(user_features(int(uid), history, now, client.max_history_length, segment))
        state, answered = client.predict("user_tower", stack_features(rows), version)
        assert answered == version, (answered, version)
        written += cache.put_many(client.model_name, version, [int(u) for u in ids[begin:begin + batch_size]],
                                  state, ttl_seconds)
    seconds = time.perf_counter() - started
    return {"model": client.model_name, "version": version, "users": written, "request_timestamp": now,
            "seconds": round(seconds, 3), "users_per_second": round(written / seconds, 1) if seconds else None,
            "cache": cache.url}
