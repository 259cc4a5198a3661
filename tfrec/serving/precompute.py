"""Batch precompute of user state: every user of a user-history file through ``user_tower``.

The DMGIN deployment computes the candidate-independent part offline (or on a schedule) and keeps
it in a key-value store; online requests then only run ``score``. This job reads the users'
lifelong histories, cuts them at one request time (the data's "now" by default: one second after
its last behavior), runs them in batches through the ``user_tower`` signature of one pinned model
version over gRPC, and writes each user's state to the cache under ``(model, version, user_id)``.
A model trained with user vectors (CHIME's compressed interests, ``tfrec.data.user_vectors``) gets
each user's vector as of that same request time from the client's ``user_vectors``: the user
vector is part of the user state, precomputed and cached with it.
"""
from __future__ import annotations

import time
from typing import Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from tfrec.serving.requests import stack_features


def data_now(histories) -> int:
    """One second after the last behavior in the histories (0 when there are none)."""
    ts = histories.sequences["hist_timestamp"]
    return int(ts.max()) + 1 if len(ts) else 0


def precompute_states(client, cache, users: Iterable[Tuple[int, int, Mapping]], request_timestamp: int,
                      batch_size: int = 64, ttl_seconds: Optional[float] = None) -> dict:
    """Writes the state of each ``(user_id, profile, history)`` to ``cache``; returns a summary.

    ``profile`` is the user's features (``tfrec.serving.requests.profile_features``; None = taken
    from ``history`` where it carries them, as ``UserHistories.history`` does).

    One model version (``client.served_version()``) computes every state, in batches of
    ``batch_size`` users through its ``user_tower`` signature; ``history`` is what
    ``tfrec.serving.requests.user_features`` takes, cut at ``request_timestamp``
    (``client.features``: with the client's ``user_vectors``, each user's vector in force then).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    version = client.served_version()
    started, written, batch = time.perf_counter(), 0, []

    def flush():
        rows = [client.features(uid, history, profile, request_timestamp) for uid, profile, history in batch]
        state, answered = client.predict("user_tower", stack_features(rows), version)
        if answered != version:  # a pinned request is answered by that version or fails
            raise RuntimeError(f"user_tower of {client.model_name} answered with version {answered}, not {version}")
        return cache.put_many(client.model_name, version, [uid for uid, _, _ in batch], state, ttl_seconds)

    for user in users:
        batch.append((int(user[0]), user[1], user[2]))
        if len(batch) == batch_size:
            written += flush()
            batch = []
    if batch:
        written += flush()
    seconds = time.perf_counter() - started
    summary = {"model": client.model_name, "version": version, "users": written,
               "request_timestamp": int(request_timestamp), "seconds": round(seconds, 3),
               "users_per_second": round(written / seconds, 1) if seconds else None, "cache": cache.url}
    vectors = client.user_vectors
    if vectors is not None:  # which slice the states hold (None: before the first one, zeros)
        s = int(np.searchsorted(vectors.boundaries, request_timestamp, side="right")) - 1
        summary["user_vectors"] = {"name": vectors.name, "dim": vectors.dim,
                                   "slice_boundary": int(vectors.boundaries[s]) if s >= 0 else None}
    return summary


def precompute_user_states(client, cache, histories, request_timestamp: Optional[int] = None,
                           batch_size: int = 64, user_ids: Optional[Sequence[int]] = None,
                           ttl_seconds: Optional[float] = None) -> dict:
    """``precompute_states`` for every (or each listed) user of a ``UserHistories``.

    Args:
      client: a ``ServingClient`` (its model and version choice are used; one version for all).
      cache: a ``UserStateCache``.
      histories: ``tfrec.data.dataset.UserHistories``.
      request_timestamp: the time the states are computed for; default ``data_now(histories)``.
      batch_size: users per ``user_tower`` request.
      user_ids: a subset of users (default: all in ``histories``).
      ttl_seconds: TTL of the written entries (default: the cache's).
    """
    now = data_now(histories) if request_timestamp is None else int(request_timestamp)
    ids = histories.user_ids if user_ids is None else np.asarray(user_ids, np.int64)

    def users():
        for uid in ids:
            yield int(uid), None, histories.history(int(uid))

    return precompute_states(client, cache, users(), now, batch_size, ttl_seconds)
