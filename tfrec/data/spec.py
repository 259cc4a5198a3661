"""The one feature spec shared by the TFRecord writer, the tf.data reader and the export signatures.

Three record shapes use it:

* **user-history record** (one per user, in the user-history file): ``user_id``, the user profile
  (``user_segment``) and the lifelong behavior sequence as parallel lists, oldest first.
* **example record** (one impression): ``user_id``, ``item_id`` (the target), ``request_timestamp``,
  ``label`` and, for synthetic data, ``true_prob``. The history is joined from the user-history
  file at read time and cut at ``request_timestamp`` (no future leakage). An example may also
  carry its history inline (the sequence fields below plus ``user_segment``) for small data
  and users' own pipelines.
* **model features** (what every model and every serving signature sees): dense tensors; the
  sequence fields padded to ``[B, L]`` plus ``hist_length`` ``[B]``.

Group ids are *not* a record field: the model maps ``item_id`` to its K-means group with the
item->group table stored inside the model (and so inside the SavedModel), so a group id can never
go stale against the model that serves it.

Semantic IDs (RQ-VAE codes, SIREN eq. 1) *are* record fields when ``FeatureSpec.semantic_id_levels``
M > 0: the target's codes as M scalars ``item_semantic_id_1 .. item_semantic_id_M`` and each
behavior's codes as M more parallel lists ``hist_semantic_id_1 .. hist_semantic_id_M`` (level m
= SIREN's ``c^(m)``), written by ``write-tfrecords`` / ``beam-tfrecords`` from the
``semantic_ids.npz`` item table. The reader stacks them into the model features
``item_semantic_id`` ``[B, M]`` and ``hist_semantic_id`` ``[B, L, M]`` (cut and padded with the
other sequences), for SIREN's prefix encoding and its hard GSU (same level-1 code) and for
pipelines that filter on codes before training. The serving signatures do not take them: a model
that serves with Semantic IDs keeps the item->code table inside the SavedModel, as for groups.

Behavior types are fine-grained (``BEHAVIOR_TYPES``); each maps to a coarse interest category
(``BEHAVIOR_CATEGORIES``) used by the DMGIN group statistics (paper eq. 1).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

import numpy as np
import tensorflow as tf

# Fine-grained behavior types, index = id in ``hist_behavior_type``.
BEHAVIOR_TYPES: Tuple[str, ...] = ("view", "click", "favorite", "cart", "order", "negative")
# Coarse interest categories (DMGIN: strong / weak / negative / payment).
CATEGORIES: Tuple[str, ...] = ("weak", "strong", "payment", "negative")
# For each fine type, the index of its coarse category in ``CATEGORIES``.
BEHAVIOR_CATEGORIES: Tuple[int, ...] = (0, 0, 1, 1, 2, 3)

# Timestamps are integer epoch seconds everywhere (records, model inputs, SavedModel inputs).
SECONDS_PER_DAY = 86400

INT = "int64"
FLOAT = "float32"


@dataclasses.dataclass(frozen=True)
class Feature:
    """One field of a record.

    Attributes:
      name: the feature key in TFRecords and in model/serving inputs.
      dtype: ``"int64"`` or ``"float32"``.
      sequence: True for per-behavior lists (padded to ``[B, L]`` in model features).
      vocab: name of the vocabulary size attribute of ``FeatureSpec`` bounding an id field
        (values must lie in ``[0, vocab)``), or None.
      non_negative: values must be >= 0.
    """

    name: str
    dtype: str
    sequence: bool = False
    vocab: str | None = None
    non_negative: bool = False

    @property
    def tf_dtype(self) -> tf.DType:
        return tf.int64 if self.dtype == INT else tf.float32

    @property
    def np_dtype(self):
        return np.int64 if self.dtype == INT else np.float32


# Parallel per-behavior lists, oldest first.
SEQUENCE_FEATURES: Tuple[Feature, ...] = (
    Feature("hist_item_id", INT, sequence=True, vocab="n_items"),
    Feature("hist_behavior_type", INT, sequence=True, vocab="n_behavior_types"),
    Feature("hist_timestamp", INT, sequence=True, non_negative=True),
    Feature("hist_duration", FLOAT, sequence=True, non_negative=True),
    Feature("hist_amount", FLOAT, sequence=True, non_negative=True),
)
USER_ID = Feature("user_id", INT, non_negative=True)
USER_PROFILE_FEATURES: Tuple[Feature, ...] = (Feature("user_segment", INT, vocab="n_user_segments"),)
TARGET_FEATURES: Tuple[Feature, ...] = (Feature("item_id", INT, vocab="n_items"),)
REQUEST_TIMESTAMP = Feature("request_timestamp", INT, non_negative=True)
LABEL = Feature("label", INT)
TRUE_PROB = Feature("true_prob", FLOAT)  # synthetic data only: the planted click probability
HIST_LENGTH = "hist_length"
# Model-feature names of the stacked Semantic ID codes (records hold one field per level).
ITEM_SEMANTIC_ID = "item_semantic_id"
HIST_SEMANTIC_ID = "hist_semantic_id"


def semantic_id_field(prefix: str, level: int) -> str:
    """Record field of level ``level`` (1-based, SIREN's ``c^(m)``): e.g. ``hist_semantic_id_1``."""
    return f"{prefix}_{level}"


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """Vocabulary sizes and lengths that bound every field.

    Attributes:
      n_items: item ids lie in ``[0, n_items)``; the model maps any other id to an OOV row.
      n_behavior_types: number of fine-grained behavior types (``len(BEHAVIOR_TYPES)``).
      n_user_segments: size of the ``user_segment`` profile vocabulary.
      max_history_length: L, the number of most recent behaviors (before the request) fed to
        models; longer histories keep their most recent L behaviors.
      behavior_categories: coarse category index for each fine behavior type.
      semantic_id_levels: M, the Semantic ID levels the records carry (0 = none, the default).
      semantic_id_vocab: codes lie in ``[0, semantic_id_vocab)`` at every level (the RQ-VAE
        codebook size K, or more with a de-collision level); 0 when ``semantic_id_levels`` is 0.
    """

    n_items: int
    n_user_segments: int = 8
    max_history_length: int = 1000
    n_behavior_types: int = len(BEHAVIOR_TYPES)
    behavior_categories: Tuple[int, ...] = BEHAVIOR_CATEGORIES
    semantic_id_levels: int = 0
    semantic_id_vocab: int = 0

    def __post_init__(self):
        for name in ("n_items", "n_user_segments", "max_history_length", "n_behavior_types"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"FeatureSpec.{name} must be a positive int. Received: {name}={value!r}")
        if len(self.behavior_categories) != self.n_behavior_types:
            raise ValueError(
                "FeatureSpec.behavior_categories needs one coarse category per behavior type "
                f"({self.n_behavior_types}). Received: {len(self.behavior_categories)} entries"
            )
        for name in ("semantic_id_levels", "semantic_id_vocab"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"FeatureSpec.{name} must be an int >= 0. Received: {name}={value!r}")
        if bool(self.semantic_id_levels) != bool(self.semantic_id_vocab):
            raise ValueError(
                "FeatureSpec.semantic_id_levels and semantic_id_vocab are both 0 (no Semantic IDs) or both "
                f"positive. Received: semantic_id_levels={self.semantic_id_levels}, "
                f"semantic_id_vocab={self.semantic_id_vocab}"
            )

    @property
    def n_categories(self) -> int:
        return max(self.behavior_categories) + 1

    def vocab_size(self, feature: Feature) -> int | None:
        return getattr(self, feature.vocab) if feature.vocab else None

    # -- record layouts ---------------------------------------------------------------------
    def semantic_id_features(self, prefix: str) -> Tuple[Feature, ...]:
        """The M per-level record fields ``<prefix>_1 .. <prefix>_M`` (none when M = 0).

        ``prefix`` is ``ITEM_SEMANTIC_ID`` (the target's codes, scalars) or ``HIST_SEMANTIC_ID``
        (each behavior's codes, parallel lists).
        """
        sequence = prefix == HIST_SEMANTIC_ID
        return tuple(Feature(semantic_id_field(prefix, m), INT, sequence=sequence, vocab="semantic_id_vocab")
                     for m in range(1, self.semantic_id_levels + 1))

    def sequence_features(self) -> Tuple[Feature, ...]:
        """Every per-behavior list of a history: ``SEQUENCE_FEATURES`` + the Semantic ID levels."""
        return SEQUENCE_FEATURES + self.semantic_id_features(HIST_SEMANTIC_ID)

    def history_record_features(self) -> Tuple[Feature, ...]:
        """Fields of a user-history record (one per user)."""
        return (USER_ID,) + USER_PROFILE_FEATURES + self.sequence_features()

    def example_record_features(self, inline_history: bool = False, with_true_prob: bool = False):
        """Fields of an example record; ``inline_history`` adds profile + sequence fields."""
        fields = (USER_ID,) + TARGET_FEATURES + self.semantic_id_features(ITEM_SEMANTIC_ID)
        fields += (REQUEST_TIMESTAMP, LABEL)
        if with_true_prob:
            fields += (TRUE_PROB,)
        if inline_history:
            fields += USER_PROFILE_FEATURES + self.sequence_features()
        return fields

    def parse_spec(self, features) -> Dict[str, tf.io.FixedLenFeature | tf.io.RaggedFeature]:
        """``tf.io.parse_example`` spec: scalars fixed-length, sequences ragged."""
        out = {}
        for f in features:
            if f.sequence:
                out[f.name] = tf.io.RaggedFeature(f.tf_dtype, row_splits_dtype=tf.int32)
            else:
                out[f.name] = tf.io.FixedLenFeature([], f.tf_dtype)
        return out

    # -- model / serving inputs -------------------------------------------------------------
    def user_input_signature(self) -> Dict[str, tf.TensorSpec]:
        """Dense inputs of the candidate-independent half (the ``user_tower`` signature)."""
        sig = {
            USER_ID.name: tf.TensorSpec([None], tf.int64, name=USER_ID.name),
            REQUEST_TIMESTAMP.name: tf.TensorSpec([None], tf.int64, name=REQUEST_TIMESTAMP.name),
            HIST_LENGTH: tf.TensorSpec([None], tf.int32, name=HIST_LENGTH),
        }
        for f in USER_PROFILE_FEATURES:
            sig[f.name] = tf.TensorSpec([None], f.tf_dtype, name=f.name)
        for f in SEQUENCE_FEATURES:
            sig[f.name] = tf.TensorSpec([None, None], f.tf_dtype, name=f.name)
        return sig

    def candidate_input_signature(self) -> Dict[str, tf.TensorSpec]:
        """Candidates for ``score``: ``[B, C]`` item ids (C candidates per user)."""
        return {"candidate_item_id": tf.TensorSpec([None, None], tf.int64, name="candidate_item_id")}

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["behavior_categories"] = list(self.behavior_categories)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        d = dict(d)
        if "behavior_categories" in d:
            d["behavior_categories"] = tuple(d["behavior_categories"])
        return cls(**d)
