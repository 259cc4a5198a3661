"""The one feature spec shared by the TFRecord writer, the tf.data reader and the export signatures.

A ``FeatureSpec`` is a data set's schema (``tfrec.data.schema``: declared user, context, item and
behavior features, loaded from ``raw/schema.yaml``) plus its sizes. Three record shapes use it:

* **user-history record** (one per user, in the user-history file): ``user_id``, the user features
  (default schema: ``user_segment``) and the lifelong behavior sequence as parallel lists, oldest
  first: the built-in ``hist_*`` five + one ``hist_<name>`` per declared behavior feature.
* **example record** (one impression): ``user_id``, ``item_id`` (the target), ``request_timestamp``,
  ``label``, for synthetic data ``true_prob``, and the declared context features. The history is
  joined from the user-history file at read time and cut at ``request_timestamp`` (no future
  leakage). An example may also carry its history inline (the user features and sequence fields)
  for small data and users' own pipelines.
* **model features** (what every model and every serving signature sees): dense tensors; the
  sequence fields padded to ``[B, L]`` plus ``hist_length`` ``[B]``; multi-valued user features
  ``[B, max_len]`` padded with -1.

Item features are *not* record fields: the model looks them up by item id in the item table it
stores (``tfrec.data.item_table``), so records and requests carry item ids only.

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
from typing import Dict, Mapping, Tuple

import numpy as np
import tensorflow as tf

from tfrec.data import schema as schema_lib
from tfrec.data.schema import SECTIONS, FeatureDef

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
      sequence: True for per-behavior lists (parallel to the behaviors, padded to ``[B, L]`` in
        model features).
      vocab: the vocabulary bounding an id field (values must lie in ``[0, vocab)``): the name of
        a ``FeatureSpec`` size attribute (e.g. ``"n_items"``) or an int from the schema; None = unbounded.
      non_negative: values must be >= 0.
      max_len: > 0 for a multi-valued field (a variable list of at most ``max_len`` values per
        record, e.g. a user's interest tags; padded with -1 to ``[B, max_len]`` in model features).
      schema_name: the schema feature this field carries (``location`` for ``hist_location``), for
        error messages; None for the built-in fields.
    """

    name: str
    dtype: str
    sequence: bool = False
    vocab: str | int | None = None
    non_negative: bool = False
    max_len: int = 0
    schema_name: str | None = None

    @property
    def multi(self) -> bool:
        return self.max_len > 0

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
# The user feature of the default schema (data written before schemas existed).
USER_SEGMENT = "user_segment"
TARGET_FEATURES: Tuple[Feature, ...] = (Feature("item_id", INT, vocab="n_items"),)
REQUEST_TIMESTAMP = Feature("request_timestamp", INT, non_negative=True)
LABEL = Feature("label", INT)
TRUE_PROB = Feature("true_prob", FLOAT)  # synthetic data only: the planted click probability
HIST_LENGTH = "hist_length"
# Model-feature names of the stacked Semantic ID codes (records hold one field per level).
ITEM_SEMANTIC_ID = "item_semantic_id"
HIST_SEMANTIC_ID = "hist_semantic_id"
# Model feature / user_tower input of a precomputed per-user vector (``tfrec.data.user_vectors``).
USER_VECTOR = "user_vector"
# Padding of multi-valued fields in model features (and of empty lists): never a valid id.
MULTI_PAD = -1


def semantic_id_field(prefix: str, level: int) -> str:
    """Record field of level ``level`` (1-based, SIREN's ``c^(m)``): e.g. ``hist_semantic_id_1``."""
    return f"{prefix}_{level}"


def record_field(section: str, fd: FeatureDef) -> Feature:
    """The record / model-input field carrying declared feature ``fd`` of ``section``."""
    name = f"hist_{fd.name}" if section == "behavior" else fd.name
    vocab = fd.vocab_size or None
    dtype = INT if fd.is_id else FLOAT
    return Feature(name, dtype, sequence=section == "behavior", vocab=vocab, max_len=fd.max_len, schema_name=fd.name)


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """The schema of a data set: vocabulary sizes, lengths and declared features (``tfrec.data.schema``).

    Attributes:
      n_items: item ids lie in ``[0, n_items)``; the model maps any other id to an OOV row.
      n_user_segments: size of the ``user_segment`` vocabulary of the default schema (used only
        when ``user_features`` is not declared).
      max_history_length: L, the number of most recent behaviors (before the request) fed to
        models; longer histories keep their most recent L behaviors.
      n_behavior_types: number of fine-grained behavior types (``len(BEHAVIOR_TYPES)``).
      behavior_categories: coarse category index for each fine behavior type.
      semantic_id_levels: M, the Semantic ID levels the records carry (0 = none, the default).
      semantic_id_vocab: codes lie in ``[0, semantic_id_vocab)`` at every level (the RQ-VAE
        codebook size K, or more with a de-collision level); 0 when ``semantic_id_levels`` is 0.
      user_features: declared user features (one value per user); None = the default schema's
        single ``user_segment`` (categorical, ``n_user_segments``).
      context_features: declared per-example features.
      item_features: declared item features (from the item table inside the model).
      behavior_features: declared extra per-behavior features (``hist_<name>``).
      user_vector_dim: D, the width of a precomputed per-user vector (``tfrec.data.user_vectors``:
        CHIME's compressed interests, LEARN's user embedding) read as the model feature
        ``user_vector`` ``[B, D]`` float32 and taken by ``user_tower``; 0 = none (the default). Not a
        record field: ``make_dataset(..., user_vectors=...)`` joins it by user and request time.
    """

    n_items: int
    n_user_segments: int = 8
    max_history_length: int = 1000
    n_behavior_types: int = len(BEHAVIOR_TYPES)
    behavior_categories: Tuple[int, ...] = BEHAVIOR_CATEGORIES
    semantic_id_levels: int = 0
    semantic_id_vocab: int = 0
    user_features: Tuple[FeatureDef, ...] | None = None
    context_features: Tuple[FeatureDef, ...] = ()
    item_features: Tuple[FeatureDef, ...] = ()
    behavior_features: Tuple[FeatureDef, ...] = ()
    user_vector_dim: int = 0

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
        for name in ("semantic_id_levels", "semantic_id_vocab", "user_vector_dim"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"FeatureSpec.{name} must be an int >= 0. Received: {name}={value!r}")
        if bool(self.semantic_id_levels) != bool(self.semantic_id_vocab):
            raise ValueError(
                "FeatureSpec.semantic_id_levels and semantic_id_vocab are both 0 (no Semantic IDs) or both "
                f"positive. Received: semantic_id_levels={self.semantic_id_levels}, "
                f"semantic_id_vocab={self.semantic_id_vocab}"
            )
        if self.user_features is None:
            object.__setattr__(self, "user_features", self._default_user_features())
        sections = {}
        for section in SECTIONS:
            defs = tuple(getattr(self, f"{section}_features"))
            for fd in defs:
                if not isinstance(fd, FeatureDef):
                    raise ValueError(f"FeatureSpec.{section}_features holds FeatureDef s. Received: {fd!r}")
                # Re-validates declarations made in Python (the YAML path validated them already).
                schema_lib.feature_from_dict(section, {k: v for k, v in dataclasses.asdict(fd).items()
                                                       if v is not None})
            object.__setattr__(self, f"{section}_features", defs)
            sections[section] = defs
        schema_lib.check_unique(sections)

    @property
    def n_categories(self) -> int:
        return max(self.behavior_categories) + 1

    def vocab_size(self, feature: Feature) -> int | None:
        if feature.vocab is None:
            return None
        return feature.vocab if isinstance(feature.vocab, int) else getattr(self, feature.vocab)

    # -- declared features --------------------------------------------------------------------
    def user_fields(self) -> Tuple[Feature, ...]:
        """Record fields of the user features (history records, inline examples, ``user_tower``)."""
        fields = tuple(record_field("user", fd) for fd in self.user_features)
        if self.user_features == self._default_user_features():  # errors name FeatureSpec.n_user_segments
            fields = (dataclasses.replace(fields[0], vocab="n_user_segments"),)
        return fields

    def _default_user_features(self) -> Tuple[FeatureDef, ...]:
        return (FeatureDef(USER_SEGMENT, "categorical", vocab_size=int(self.n_user_segments)),)

    def context_fields(self) -> Tuple[Feature, ...]:
        """Record fields of the context features (example records, ``score``)."""
        return tuple(record_field("context", fd) for fd in self.context_features)

    def behavior_fields(self) -> Tuple[Feature, ...]:
        """The extra per-behavior fields ``hist_<name>``."""
        return tuple(record_field("behavior", fd) for fd in self.behavior_features)

    def statistics_needed(self) -> Tuple[Tuple[str, str], ...]:
        """``(section, name)`` of the standardized numeric features whose mean/std are unknown."""
        return tuple((s, fd.name) for s in SECTIONS for fd in getattr(self, f"{s}_features") if fd.needs_statistics)

    def with_statistics(self, stats: Mapping[Tuple[str, str], Tuple[float, float]]) -> "FeatureSpec":
        """A copy whose standardized numeric features get the measured ``(mean, std)``."""
        updates = {}
        for section in SECTIONS:
            defs = getattr(self, f"{section}_features")
            updates[f"{section}_features"] = tuple(
                dataclasses.replace(fd, mean=float(stats[(section, fd.name)][0]),
                                    std=float(stats[(section, fd.name)][1]))
                if (section, fd.name) in stats else fd for fd in defs)
        return dataclasses.replace(self, **updates)

    # -- record layouts ---------------------------------------------------------------------
    def semantic_id_features(self, prefix: str) -> Tuple[Feature, ...]:
        """The M per-level record fields ``<prefix>_1 .. <prefix>_M`` (none when M = 0).

        ``prefix`` is ``ITEM_SEMANTIC_ID`` (the target's codes, scalars) or ``HIST_SEMANTIC_ID``
        (each behavior's codes, parallel lists).
        """
        sequence = prefix == HIST_SEMANTIC_ID
        return tuple(Feature(semantic_id_field(prefix, m), INT, sequence=sequence, vocab="semantic_id_vocab")
                     for m in range(1, self.semantic_id_levels + 1))

    def history_sequence_features(self) -> Tuple[Feature, ...]:
        """The per-behavior model inputs: the built-in five + the declared behavior features."""
        return SEQUENCE_FEATURES + self.behavior_fields()

    def sequence_features(self) -> Tuple[Feature, ...]:
        """Every per-behavior list of a history record: model inputs + the Semantic ID levels."""
        return self.history_sequence_features() + self.semantic_id_features(HIST_SEMANTIC_ID)

    def history_record_features(self) -> Tuple[Feature, ...]:
        """Fields of a user-history record (one per user)."""
        return (USER_ID,) + self.user_fields() + self.sequence_features()

    def example_record_features(self, inline_history: bool = False, with_true_prob: bool = False):
        """Fields of an example record; ``inline_history`` adds the user + sequence fields."""
        fields = (USER_ID,) + TARGET_FEATURES + self.semantic_id_features(ITEM_SEMANTIC_ID)
        fields += (REQUEST_TIMESTAMP, LABEL)
        if with_true_prob:
            fields += (TRUE_PROB,)
        fields += self.context_fields()
        if inline_history:
            fields += self.user_fields() + self.sequence_features()
        return fields

    def parse_spec(self, features) -> Dict[str, tf.io.FixedLenFeature | tf.io.RaggedFeature]:
        """``tf.io.parse_example`` spec: scalars fixed-length, sequences and multi-valued fields ragged."""
        out = {}
        for f in features:
            if f.sequence or f.multi:
                out[f.name] = tf.io.RaggedFeature(f.tf_dtype, row_splits_dtype=tf.int32)
            else:
                out[f.name] = tf.io.FixedLenFeature([], f.tf_dtype)
        return out

    # -- model / serving inputs -------------------------------------------------------------
    def user_input_signature(self) -> Dict[str, tf.TensorSpec]:
        """Dense inputs of the candidate-independent half (the ``user_tower`` signature).

        ``user_id``, ``request_timestamp``, ``hist_length`` ``[B]``; each user feature ``[B]``
        (multi-valued: ``[B, max_len]`` padded with -1); every ``hist_*`` field ``[B, L]``; with
        ``user_vector_dim`` D > 0, ``user_vector`` ``[B, D]`` float32 (precomputed, cached like any
        user state; all zeros = the user has no vector).
        """
        sig = {
            USER_ID.name: tf.TensorSpec([None], tf.int64, name=USER_ID.name),
            REQUEST_TIMESTAMP.name: tf.TensorSpec([None], tf.int64, name=REQUEST_TIMESTAMP.name),
            HIST_LENGTH: tf.TensorSpec([None], tf.int32, name=HIST_LENGTH),
        }
        for f in self.user_fields():
            sig[f.name] = tf.TensorSpec([None, f.max_len] if f.multi else [None], f.tf_dtype, name=f.name)
        for f in self.history_sequence_features():
            sig[f.name] = tf.TensorSpec([None, None], f.tf_dtype, name=f.name)
        if self.user_vector_dim:
            sig[USER_VECTOR] = tf.TensorSpec([None, int(self.user_vector_dim)], tf.float32, name=USER_VECTOR)
        return sig

    def context_input_signature(self) -> Dict[str, tf.TensorSpec]:
        """Per-request context for ``score`` and ``serving_default``: each context feature ``[B]``."""
        return {f.name: tf.TensorSpec([None], f.tf_dtype, name=f.name) for f in self.context_fields()}

    def candidate_input_signature(self) -> Dict[str, tf.TensorSpec]:
        """Candidates for ``score``: ``[B, C]`` item ids (C candidates per user)."""
        return {"candidate_item_id": tf.TensorSpec([None, None], tf.int64, name="candidate_item_id")}

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["behavior_categories"] = list(self.behavior_categories)
        for section in SECTIONS:
            d[f"{section}_features"] = [fd.to_dict() for fd in getattr(self, f"{section}_features")]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        """The inverse of ``to_dict``; a ``spec.json`` written before schemas existed loads unchanged."""
        d = dict(d)
        if "behavior_categories" in d:
            d["behavior_categories"] = tuple(d["behavior_categories"])
        for section in SECTIONS:
            key = f"{section}_features"
            if d.get(key) is not None:
                d[key] = schema_lib.features_from_dicts(section, d[key])
        return cls(**d)

    @classmethod
    def from_schema_file(cls, path, **defaults) -> "FeatureSpec":
        """A FeatureSpec from a YAML schema file (``tfrec.data.schema``); ``defaults`` supply the sizes
        the file does not declare (``n_items``, ``max_history_length`` ...)."""
        declared = schema_lib.load_schema_file(path)
        return cls(**{**defaults, **declared})
