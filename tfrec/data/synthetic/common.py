"""What every synthetic generator version returns, and the oracle row of a benchmark."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from tfrec.data import spec as spec_lib

# Median duration (seconds) per behavior type, in ``BEHAVIOR_TYPES`` order.
DURATION_MEDIAN_S = np.array([8.0, 45.0, 20.0, 30.0, 120.0, 3.0])
# Behavior-type probabilities at intensity s: ``TYPE_BASE + s * TYPE_SLOPE`` (then normalised).
TYPE_BASE = np.array([0.50, 0.30, 0.05, 0.06, 0.03, 0.0])
TYPE_SLOPE = np.array([-0.25, -0.05, 0.10, 0.08, 0.12, 0.0])


def draw_items(rng, topics, by_topic, cdf):
    """A popularity-weighted item of each given topic (``cdf``'s topic-c segment rises from c to c + 1)."""
    pos = np.searchsorted(cdf, topics + rng.random(np.shape(topics)), side="right")
    return by_topic[np.minimum(pos, len(by_topic) - 1)]


def draw_types(rng, intensity):
    """Behavior types at per-behavior intensity ``[n]`` in [0, 1]."""
    probs = TYPE_BASE[None, :] + intensity[:, None] * TYPE_SLOPE[None, :]
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    return np.minimum((rng.random(len(intensity))[:, None] > cdf).sum(axis=1), len(TYPE_BASE) - 1)


def pick_allowed(rng, allowed):
    """Uniformly one allowed column per row of a boolean ``[n, K]`` (rows with none get column 0)."""
    return np.argmax(rng.random(allowed.shape) * allowed, axis=1)


def draw_brands(rng, topic, brands_per_topic, n_brands, noise):
    """``brand``: one of ``brands_per_topic`` of the item's topic, or with probability ``noise`` any."""
    brand = topic * brands_per_topic + rng.integers(0, brands_per_topic, len(topic))
    noisy = rng.random(len(topic)) < noise
    return np.where(noisy, rng.integers(0, n_brands, len(topic)), brand).astype(np.int64)


def example_rows(spec: spec_lib.FeatureSpec, columns: Dict[str, Dict[str, list]]) -> Dict[str, List[dict]]:
    """``{split: {field: [arrays]}}`` -> ``{split: [example dicts]}`` in the spec's dtypes."""
    fields = spec.example_record_features(with_true_prob=True)
    names = [f.name for f in fields]
    examples = {}
    for split, col in columns.items():
        arrays = [np.concatenate(col[f.name]).astype(f.np_dtype) for f in fields]
        examples[split] = [dict(zip(names, row)) for row in zip(*arrays)]
    return examples


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
