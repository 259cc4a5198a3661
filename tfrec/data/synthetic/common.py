"""What every synthetic generator version returns, and the oracle row of a benchmark."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from tfrec.data import spec as spec_lib


@dataclasses.dataclass
class SyntheticData:
    """A generated data set.

    Attributes:
      config: the version's ``SyntheticConfig`` it was generated from.
      spec: a ``FeatureSpec`` sized for the data (``max_history_length`` = the config's).
      items: ``item_id`` int64 ``[n_items]``, ``topic`` int64 ``[n_items]`` (the latent topic the
        planted click probability uses), ``embedding`` float32 ``[n_items, D]`` (the "multimodal"
        vector), ``category`` and ``brand`` (side features); v2 adds ``content_topic`` (the topic
        the embedding shows; differs from ``topic`` for misaligned items).
      histories: one dict per user with exactly the fields of ``spec.history_record_features()``
        (scalars as numpy scalars, sequences as numpy arrays, oldest first).
      train: example dicts with the fields of ``spec.example_record_features(with_true_prob=True)``.
      test: the same for the test split (every request after all of its user's train requests).
      world: the version's hidden structure beyond ``items`` (v2: the topic transition chain and
        the topic -> category map), ``None`` for v1.
    """

    config: Any
    spec: spec_lib.FeatureSpec
    items: Dict[str, np.ndarray]
    histories: List[dict]
    train: List[dict]
    test: List[dict]
    world: Optional[Any] = None

    def hist_topic(self, history: dict) -> np.ndarray:
        """The latent topic of every behavior of a history record."""
        return self.items["topic"][history["hist_item_id"]]


def oracle_metrics_inputs(data: SyntheticData, split: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs for the oracle row of a benchmark: score every example with its ``true_prob``.

    Args:
      data: a generated ``SyntheticData``.
      split: ``"train"`` or ``"test"``.

    Returns:
      ``(user_ids int64 [N], labels int64 [N], true_probs float32 [N])`` in example order; feed them
      to AUC/GAUC/logloss as ``(groups, labels, predictions)``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'. Received: split={split!r}")
    examples = getattr(data, split)
    user_ids = np.fromiter((e["user_id"] for e in examples), np.int64, len(examples))
    labels = np.fromiter((e["label"] for e in examples), np.int64, len(examples))
    true_probs = np.fromiter((e["true_prob"] for e in examples), np.float32, len(examples))
    return user_ids, labels, true_probs
