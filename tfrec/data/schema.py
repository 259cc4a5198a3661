"""The declarative feature schema: what a data set's user, context, item and behavior features are.

A schema file (YAML) declares features in four sections; everything else derives from it (the
writer's validation, Beam, the tf.data reader, the model inputs, the export signatures and the
serving request builder), through the ``FeatureSpec`` it loads into (``spec.json`` beside the
TFRecords records it, statistics included).

.. code-block:: yaml

    # raw/schema.yaml
    max_history_length: 1500          # optional: L fed to models (default: dataset.json)
    user:                             # one value per user (in the user-history record)
      - {name: age, kind: categorical, vocab_size: 7}
      - {name: city, kind: categorical, hash_buckets: 1000}
      - {name: tags, kind: multi_categorical, vocab_size: 50, max_len: 8}
      - {name: income, kind: numeric, transform: log1p}
    context:                          # one value per example (request): hour, slot, device ...
      - {name: hour, kind: categorical, vocab_size: 24}
    item:                             # looked up by item id from the item table inside the model
      - {name: category, kind: categorical, vocab_size: 40}
      - {name: genres, kind: multi_categorical, vocab_size: 18, max_len: 6}
      - {name: price, kind: numeric, transform: standardize}
      - {name: mm_vector, kind: dense, dim: 32}
    behavior:                         # extra per-behavior fields, next to the built-in five
      - {name: location, kind: categorical, vocab_size: 100}

Kinds (``KINDS``) and where they may appear (``SECTION_KINDS``):

* ``categorical``: an int64 id, either bounded (``vocab_size``: ids in ``[0, vocab_size)``, the
  writer rejects others; at serving time any other id gets the OOV row) or hashed
  (``hash_buckets``: any int64, bucket = ``id mod hash_buckets`` in graph). Exactly one of the two.
* ``multi_categorical``: a variable list of at most ``max_len`` such ids (genres, tags); embedded
  as the mean over the list, an empty list embeds as zeros.
* ``numeric``: a float; ``transform`` = ``none`` | ``log1p`` (``log1p(max(x, 0))``) |
  ``standardize`` (``(x - mean) / std``, with ``mean`` / ``std`` measured by ``write-tfrecords``
  on the data and recorded in ``spec.json``); with ``boundaries`` (strictly increasing) the
  transformed value is bucketized and embedded instead of projected.
* ``dense``: a fixed-size float vector of ``dim`` values (a multimodal item embedding); projected.

Item features never travel in records or serving requests: ``write-tfrecords`` stores the item
table (``item_features.npz``, from ``raw/item_features.parquet``) and the model keeps it as
non-trainable weights, so the target and every behavior get their item's features by an in-graph
lookup and a SavedModel needs nothing beside it. Behavior features travel as ``hist_<name>`` lists
parallel to the built-in ``hist_*`` fields; user features in the user-history record; context
features in the example record (and in the ``score`` signature, since the cached user state must
not depend on the request's context).

The schema used when none is declared (data written before schemas existed, with their old
``spec.json``) is the fixed one: a single user feature ``user_segment`` (categorical,
``FeatureSpec.n_user_segments``), no context, item or extra behavior feature.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Dict, Iterable, Mapping, Tuple

KINDS: Tuple[str, ...] = ("categorical", "multi_categorical", "numeric", "dense")
SECTIONS: Tuple[str, ...] = ("user", "context", "item", "behavior")
# Which kinds each section accepts.
SECTION_KINDS: Dict[str, Tuple[str, ...]] = {
    "user": ("categorical", "multi_categorical", "numeric"),
    "context": ("categorical", "numeric"),
    "item": KINDS,
    "behavior": ("categorical", "numeric"),  # one value per behavior, parallel to the hist_* lists
}
TRANSFORMS: Tuple[str, ...] = ("none", "log1p", "standardize")
# Names the record layouts and signatures use themselves.
RESERVED_NAMES = frozenset({
    "user_id", "item_id", "request_timestamp", "label", "true_prob", "hist_length", "candidate_item_id",
    "fingerprint", "probabilities", "item_semantic_id", "hist_semantic_id", "user_vector",
})
# The built-in per-behavior fields (``hist_<name>``); an extra behavior feature cannot reuse them.
BUILTIN_BEHAVIOR_FIELDS = ("item_id", "behavior_type", "timestamp", "duration", "amount", "semantic_id")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class SchemaError(ValueError):
    """A schema declaration is invalid; the message names the feature, the problem and the fix."""

    def __init__(self, where: str, problem: str):
        self.where = where
        self.problem = problem
        super().__init__(f"schema {where}: {problem}")


@dataclasses.dataclass(frozen=True)
class FeatureDef:
    """One declared feature (see the module docstring for the kinds).

    Attributes:
      name: the feature's name (``[a-z][a-z0-9_]*``); behavior features appear as ``hist_<name>``.
      kind: one of ``KINDS``.
      vocab_size: categorical / multi_categorical: ids lie in ``[0, vocab_size)``.
      hash_buckets: categorical / multi_categorical: hash any int64 id into this many buckets
        instead (``id mod hash_buckets``); exactly one of ``vocab_size`` and ``hash_buckets``.
      max_len: multi_categorical: the most values one record (or item) holds.
      dim: dense: the vector size.
      transform: numeric: ``none`` | ``log1p`` | ``standardize``.
      boundaries: numeric: optional bucket boundaries (after the transform), strictly increasing.
      mean: numeric with ``standardize``: measured by ``write-tfrecords`` (or declared).
      std: numeric with ``standardize``: measured by ``write-tfrecords`` (or declared), > 0.
      embedding_dim: the size of this feature's embedding; 0 = the model's ``embedding_dim``.
    """

    name: str
    kind: str
    vocab_size: int = 0
    hash_buckets: int = 0
    max_len: int = 0
    dim: int = 0
    transform: str = "none"
    boundaries: Tuple[float, ...] = ()
    mean: float | None = None
    std: float | None = None
    embedding_dim: int = 0

    @property
    def is_id(self) -> bool:
        """categorical or multi_categorical."""
        return self.kind in ("categorical", "multi_categorical")

    @property
    def n_ids(self) -> int:
        """Rows of the embedding table before the OOV row: ``vocab_size`` or ``hash_buckets``."""
        return self.vocab_size or self.hash_buckets

    @property
    def needs_statistics(self) -> bool:
        """A standardized numeric feature whose mean/std are not known yet."""
        return self.kind == "numeric" and self.transform == "standardize" and (self.mean is None or self.std is None)

    def to_dict(self) -> dict:
        """The non-default attributes (what a schema file would say)."""
        out = {"name": self.name, "kind": self.kind}
        for field in dataclasses.fields(self)[2:]:
            value = getattr(self, field.name)
            if value != field.default:
                out[field.name] = list(value) if isinstance(value, tuple) else value
        return out


def _check_int(where: str, d: Mapping[str, Any], key: str, minimum: int) -> int:
    value = d.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SchemaError(where, f"{key} must be an integer >= {minimum}. Received: {key}={value!r}")
    return value


def feature_from_dict(section: str, d: Any, index: int = 0) -> FeatureDef:
    """Validates one declaration of ``section`` and returns its ``FeatureDef``.

    Raises:
      SchemaError: unknown keys or kind, a kind the section does not take, a missing or
        contradictory vocabulary, a bad size, transform or boundaries; the message names the
        feature and the fix.
    """
    if not isinstance(d, Mapping):
        raise SchemaError(f"{section}[{index}]", f"each feature is a mapping like {{name: ..., kind: ...}}. "
                                                 f"Received: {d!r}")
    name = d.get("name")
    where = f"{section}.{name}" if isinstance(name, str) else f"{section}[{index}]"
    if not isinstance(name, str) or not _NAME.match(name):
        raise SchemaError(where, f"name must match [a-z][a-z0-9_]* (lower case, digits, _). Received: name={name!r}")
    known = [f.name for f in dataclasses.fields(FeatureDef)]
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise SchemaError(where, f"unknown key(s) {unknown}; a feature takes {known}")
    kind = d.get("kind")
    if kind not in KINDS:
        raise SchemaError(where, f"unknown kind {kind!r}; use one of {list(KINDS)}")
    if kind not in SECTION_KINDS[section]:
        why = (" (behavior features are per-behavior scalars, one value per behavior parallel to the hist_* "
               "lists; declare list- or vector-valued data as an item feature)") if section == "behavior" else ""
        raise SchemaError(where, f"kind {kind!r} is not allowed in section {section!r}{why}; "
                                 f"{section} features may be {list(SECTION_KINDS[section])}")
    if name in RESERVED_NAMES or (section != "behavior" and name.startswith("hist_")):
        raise SchemaError(where, f"{name!r} is reserved by the record layout; rename the feature")
    if section == "behavior" and name in BUILTIN_BEHAVIOR_FIELDS:
        raise SchemaError(where, f"hist_{name} is a built-in behavior field; rename the extra feature")
    vocab = _check_int(where, d, "vocab_size", 0)
    buckets = _check_int(where, d, "hash_buckets", 0)
    max_len = _check_int(where, d, "max_len", 0)
    dim = _check_int(where, d, "dim", 0)
    embedding_dim = _check_int(where, d, "embedding_dim", 0)
    transform = d.get("transform", "none")
    boundaries = d.get("boundaries", ())
    mean, std = d.get("mean"), d.get("std")
    if kind in ("categorical", "multi_categorical"):
        if bool(vocab) == bool(buckets):
            raise SchemaError(where, f"a {kind} feature needs exactly one of vocab_size (ids in [0, vocab_size)) "
                                     "or hash_buckets (any int64 id, hashed). Received: "
                                     f"vocab_size={d.get('vocab_size')!r}, hash_buckets={d.get('hash_buckets')!r}")
    elif vocab or buckets:
        raise SchemaError(where, f"vocab_size / hash_buckets apply to categorical features, not {kind!r}; remove them")
    if kind == "multi_categorical" and not max_len:
        raise SchemaError(where, "a multi_categorical feature needs max_len (the most values one record holds)")
    if kind != "multi_categorical" and max_len:
        raise SchemaError(where, f"max_len applies to multi_categorical features, not {kind!r}; remove it")
    if kind == "dense" and not dim:
        raise SchemaError(where, "a dense feature needs dim (the vector size)")
    if kind != "dense" and dim:
        raise SchemaError(where, f"dim applies to dense features, not {kind!r}; remove it")
    if kind == "numeric":
        if transform not in TRANSFORMS:
            raise SchemaError(where, f"unknown transform {transform!r}; use one of {list(TRANSFORMS)}")
        if not isinstance(boundaries, (list, tuple)) or not all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in boundaries):
            raise SchemaError(where, f"boundaries must be a list of finite numbers. Received: {boundaries!r}")
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise SchemaError(where, f"boundaries must be strictly increasing. Received: {list(boundaries)}")
        for key, value in (("mean", mean), ("std", std)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise SchemaError(where, f"{key} must be a finite number. Received: {key}={value!r}")
        if std is not None and std <= 0:
            raise SchemaError(where, f"std must be > 0. Received: std={std!r}")
        if transform != "standardize" and (mean is not None or std is not None):
            raise SchemaError(where, "mean / std apply to transform: standardize; remove them or set the transform")
    elif transform != "none" or boundaries or mean is not None or std is not None:
        raise SchemaError(where, f"transform / boundaries / mean / std apply to numeric features, not {kind!r}")
    return FeatureDef(name=name, kind=kind, vocab_size=vocab, hash_buckets=buckets, max_len=max_len, dim=dim,
                      transform=transform, boundaries=tuple(float(b) for b in boundaries),
                      mean=None if mean is None else float(mean), std=None if std is None else float(std),
                      embedding_dim=embedding_dim)


def features_from_dicts(section: str, items: Iterable[Any] | None) -> Tuple[FeatureDef, ...]:
    """A section's declarations -> ``FeatureDef`` s (``None`` / missing = none)."""
    if items is None:
        return ()
    if not isinstance(items, (list, tuple)):
        raise SchemaError(section, f"a section is a list of features. Received: {type(items).__name__}")
    return tuple(feature_from_dict(section, d, i) for i, d in enumerate(items))


def check_unique(sections: Mapping[str, Tuple[FeatureDef, ...]]) -> None:
    """Raises SchemaError when two features share a name (their record fields would collide)."""
    seen: Dict[str, str] = {}
    for section, defs in sections.items():
        for fd in defs:
            if fd.name in seen:
                raise SchemaError(f"{section}.{fd.name}", f"duplicate feature name (also declared in "
                                                          f"{seen[fd.name]!r}); every feature needs its own name")
            seen[fd.name] = section


SCHEMA_KEYS = ("user", "context", "item", "behavior", "max_history_length", "n_items", "version")


def parse_schema(doc: Any, source: str = "<schema>") -> Dict[str, Any]:
    """A loaded schema document -> ``{"user_features": ..., "context_features": ..., "item_features": ...,
    "behavior_features": ...}`` (+ ``max_history_length`` / ``n_items`` when given), the
    ``FeatureSpec`` keyword arguments it declares.

    Raises:
      SchemaError: the document is malformed; the message starts with ``source``.
    """
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise SchemaError(source, f"the file must hold a mapping with the sections {list(SECTIONS)}")
    unknown = sorted(set(doc) - set(SCHEMA_KEYS))
    if unknown:
        raise SchemaError(source, f"unknown top-level key(s) {unknown}; a schema has {list(SCHEMA_KEYS)}")
    try:
        sections = {s: features_from_dicts(s, doc.get(s)) for s in SECTIONS}
        check_unique(sections)
    except SchemaError as err:
        raise SchemaError(f"{source}: {err.where}", err.problem) from None
    out: Dict[str, Any] = {f"{s}_features": defs for s, defs in sections.items()}
    for key in ("max_history_length", "n_items"):
        if key in doc:
            value = doc[key]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SchemaError(source, f"{key} must be a positive integer. Received: {value!r}")
            out[key] = value
    return out


def load_schema_file(path) -> Dict[str, Any]:
    """Reads a YAML schema file; returns ``parse_schema``'s keyword arguments.

    Raises:
      FileNotFoundError: no such file.
      SchemaError: invalid YAML or declarations (the message names the file and the feature).
    """
    import yaml

    with open(path) as f:
        text = f.read()
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SchemaError(str(path), f"not valid YAML ({err})") from None
    return parse_schema(doc, str(path))


def feature_def(d: Mapping[str, Any] | FeatureDef) -> FeatureDef:
    """A ``FeatureDef`` from its ``to_dict()`` (layer configs), validated for its kind."""
    if isinstance(d, FeatureDef):
        d = {k: v for k, v in dataclasses.asdict(d).items() if v is not None}
    return feature_from_dict("item", d)  # the item section takes every kind
