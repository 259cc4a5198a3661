"""Scoring a two-stage model with behaviors retrieved outside the SavedModel (ScaNN's GSU).

A ``TwoStageModel``'s user state holds a window of the user's most recent behaviors
(``history_<f>`` ``[N]`` + ``history_mask`` ``[N]``), and its ``score`` signature retrieves the K
behaviors of each candidate from that window in graph. Where a history is far longer than any
window a SavedModel should hold (10^4 - 10^5 behaviors), the retrieval runs next to the model
(``tfrec.retrieval.ScannGSU``) and the model is scored on a *narrowed* state per (user, candidate):
the same state whose window holds only that candidate's retrieved behaviors. The in-graph GSU then
keeps all of them (top-K of K), so the model reads exactly the externally retrieved set (SIREN's
ESU attention is permutation invariant; its short-term branch and profile come from the user
state unchanged). Same signatures, same SavedModel: TF Serving needs nothing new.

This fits models whose window is read by the GSU only (SIREN, MISS's multimodal GSU alone); MUSE
also reads the window's most recent behaviors for its second SimTier histogram, which a narrowed
window would change.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

MASK = "history_mask"
PREFIX = "history_"


def narrow_state(state: Mapping[str, np.ndarray], behaviors: Mapping[str, np.ndarray], count: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """A copy of ``state`` whose behavior window holds only the given behaviors.

    Args:
      state: a TwoStageModel user state (numpy, ``[B, ...]``; e.g. the ``user_tower`` outputs,
        one row per (user, candidate) pair).
      behaviors: per-behavior field -> ``[B, K]`` values of the retrieved behaviors, keyed like the
        state (``history_item_id``, ``history_behavior_type``, one ``history_<f>`` per declared
        behavior feature: every ``history_*`` key of ``state`` but the mask).
      count: int ``[B]``, how many leading entries of each row of ``behaviors`` are real (<= K).

    Returns:
      The state with each window right-aligned to the ``count`` behaviors (in the order given),
      zeros elsewhere, and ``history_mask`` 1 on them; every other key unchanged.

    Raises:
      ValueError: missing or extra behavior fields, K larger than the window, bad ``count``.
    """
    fields = sorted(k for k in state if k.startswith(PREFIX) and k != MASK)
    if sorted(behaviors) != fields:
        raise ValueError(f"behaviors must hold exactly the state's behavior fields {fields}. "
                         f"Received: {sorted(behaviors)}")
    n = np.asarray(state[MASK]).shape[1]
    count = np.asarray(count, np.int64)
    batch = np.asarray(state[MASK]).shape[0]
    k = np.asarray(behaviors[fields[0]]).shape[1] if fields else 0
    if count.shape != (batch,) or (count < 0).any() or (count > min(k, n)).any():
        raise ValueError(f"count must be [{batch}] with values in [0, min(K={k}, window={n})]. "
                         f"Received: shape={count.shape}, values {count.min(initial=0)}..{count.max(initial=0)}")
    out = dict(state)
    slot = np.arange(n)[None, :] - (n - count)[:, None]  # [B, N]: index into the retrieved list
    keep = slot >= 0
    for f in fields:
        values = np.asarray(behaviors[f])
        gathered = np.take_along_axis(values, np.clip(slot, 0, max(k - 1, 0)), axis=1) if k else np.zeros_like(slot)
        out[f] = np.where(keep, gathered, 0).astype(np.asarray(state[f]).dtype)
    out[MASK] = keep.astype(np.asarray(state[MASK]).dtype)
    return out


def repeat_rows(state: Mapping[str, np.ndarray], times: int) -> dict[str, np.ndarray]:
    """Each row repeated ``times`` times (``[B, ...] -> [B * times, ...]``): one row per (user, candidate)."""
    return {key: np.repeat(np.asarray(v), times, axis=0) for key, v in state.items()}


def check_external_retrieval(model) -> None:
    """Raises unless ``model`` may be scored on externally retrieved behaviors (``narrow_state``,
    ``compact_features``) with unchanged outputs (``TwoStageModel.external_retrieval``)."""
    if not getattr(model, "external_retrieval", False):
        raise ValueError(f"{type(model).__name__} with this config reads its behavior window beyond a content-cosine "
                         "top-K GSU (e.g. SIREN's hard GSU, MUSE's recent SimTier, MISS's ID GSU): scoring it on "
                         "externally retrieved behaviors would change its outputs. Use SIREN with gsu: soft, or "
                         "MISS with id_gsu: false")


def compact_features(features: Mapping[str, np.ndarray], gsu, k: int, recent: int, window: int | None = None
                     ) -> dict[str, np.ndarray]:
    """The offline (training-data) GSU: each example's history cut to its retrieved and recent behaviors.

    For each example, the behaviors kept are the union of the top-``k`` by content cosine to the
    example's target (``gsu``: a ``ScannGSU``; ScaNN for long histories, exact below its threshold)
    among the ``window`` most recent behaviors (None: the whole history), and the ``recent`` most
    recent ones, in their original (time) order. For a model with ``external_retrieval`` (SIREN
    with the soft GSU), GSU depth K <= ``k``, short-term branch S <= ``recent`` and a window
    N >= ``k + recent``:

    * ``window = N``: its outputs on the compact features equal those on the full features (the
      in-graph GSU over the N most recent behaviors);
    * ``window = None``: they equal the serving path that retrieves over the whole history outside
      the SavedModel (``narrow_state``), so training and serving both see the lifelong history.

    (Up to cosine ties within float32 rounding; with approximate ScaNN, up to its recall.) One index
    is built per example: for 10^4 - 10^5-behavior histories group the examples by user and use
    ``ScannGSU.retrieve_before`` (one index per user) instead.

    Args:
      features: model features (numpy): ``item_id`` ``[B]``, ``hist_length`` ``[B]`` and the
        ``hist_*`` sequences ``[B, L]`` (histories already cut at the request time).
      gsu: a ``tfrec.retrieval.ScannGSU`` over the items' content vectors.
      k: behaviors retrieved per example.
      recent: most recent behaviors always kept (the short-term branch's S).
      window: retrieve among the ``window`` most recent behaviors only (the model's N), or None.

    Returns:
      The features with every ``hist_*`` sequence cut to ``[B, <= k + recent]`` and ``hist_length``
      updated; the other keys unchanged.
    """
    if k < 1 or recent < 0 or (window is not None and window < 1):
        raise ValueError(f"compact_features needs k >= 1, recent >= 0 and window >= 1 or None. Received: k={k}, "
                         f"recent={recent}, window={window}")
    lengths = np.minimum(np.asarray(features["hist_length"]), np.asarray(features["hist_item_id"]).shape[1])
    sequences = [key for key, v in features.items()
                 if key.startswith("hist_") and key != "hist_length" and np.ndim(v) == 2]
    keep = []
    for i, n in enumerate(lengths):
        n = int(n)
        start = 0 if window is None else max(n - window, 0)
        if n == 0:
            keep.append(np.zeros(0, np.int64))
            continue
        index = gsu.index(np.asarray(features["hist_item_id"])[i, start:n])
        positions, _ = gsu.retrieve(index, np.asarray(features["item_id"])[i:i + 1], k)
        chosen = set((start + positions[0][positions[0] >= 0]).tolist()) | set(range(max(n - recent, 0), n))
        keep.append(np.array(sorted(chosen), np.int64))
    width = max([len(x) for x in keep] + [1])
    out = dict(features)
    for key in sequences:
        values = np.asarray(features[key])
        cut = np.zeros((len(keep), width), values.dtype)
        for i, rows in enumerate(keep):
            cut[i, :len(rows)] = values[i, rows]
        out[key] = cut
    out["hist_length"] = np.array([len(x) for x in keep], np.asarray(features["hist_length"]).dtype)
    return out
