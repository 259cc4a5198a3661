"""Request building blocks shared by the client, the server, the exporter's warmup and precompute.

* ``user_features``: one user's raw history (oldest first, any length) -> the dense padded
  ``[1, L]`` inputs of the ``user_tower`` signature, cut at the request time exactly like the
  training pipeline (``tfrec.data.dataset.cut_and_pad``): only behaviors strictly before
  ``request_timestamp``, the most recent ``max_history_length`` of them, right-padded with zeros.
* ``stack_features``: several such dicts -> one batch (padded to the longest history).
* ``to_tensor_proto`` / ``from_tensor_proto`` and ``predict_request``: the TF Serving protos.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from tfrec.data import spec as spec_lib

HISTORY_FIELDS = tuple(f.name for f in spec_lib.SEQUENCE_FEATURES)  # hist_item_id, ... (built-in)
_REQUIRED = ("hist_item_id", "hist_behavior_type", "hist_timestamp")


def _history_field(history: Mapping, name: str):
    """Accepts ``hist_item_id`` or the short ``item_id`` spelling."""
    if name in history:
        return history[name]
    short = name[len("hist_"):]
    return history.get(short)


def unknown_feature_value(field: spec_lib.Feature):
    """The value a request gets for a feature it does not carry: -1 for ids (the OOV row; an empty
    list for multi-valued fields), 0 for numbers."""
    if field.multi:
        return np.full(field.max_len, spec_lib.MULTI_PAD, np.int64)
    return field.np_dtype(spec_lib.MULTI_PAD if field.dtype == spec_lib.INT else 0)


def random_feature_values(fd, rng: np.random.Generator, n: Optional[int] = None):
    """Valid random values of a declared feature (one, or ``n`` for behavior features): warmup, tests."""
    shape = () if n is None else (n,)
    if fd.kind == "categorical":
        return rng.integers(0, fd.n_ids, shape).astype(np.int64)
    if fd.kind == "multi_categorical":
        out = np.full(shape + (fd.max_len,), spec_lib.MULTI_PAD, np.int64)
        count = rng.integers(0, fd.max_len + 1, shape)
        ids = rng.integers(0, fd.n_ids, shape + (fd.max_len,))
        mask = np.arange(fd.max_len) < np.asarray(count)[..., None]
        return np.where(mask, ids, out)
    if fd.kind == "dense":
        return rng.normal(size=shape + (fd.dim,)).astype(np.float32)
    return rng.normal(size=shape).astype(np.float32)


def profile_features(profile, spec: Optional[spec_lib.FeatureSpec] = None) -> Dict[str, np.ndarray]:
    """A user's features as ``[1]`` (multi-valued ``[1, max_len]``) arrays.

    ``profile`` maps feature names to values (a multi-valued one: a list of ids); a bare int is the
    default schema's ``user_segment``. Features it lacks get the unknown value (OOV / 0 / empty).

    Raises:
      ValueError: an unknown feature name, a list longer than ``max_len``, or a list for a scalar.
    """
    fields = spec.user_fields() if spec is not None else spec_lib.FeatureSpec(n_items=1).user_fields()
    if profile is None:
        profile = {}
    elif not isinstance(profile, Mapping):
        profile = {spec_lib.USER_SEGMENT: profile}
    known = {f.name for f in fields}
    unknown = sorted(set(profile) - known)
    if unknown:
        raise ValueError(f"unknown user feature(s) {unknown}; the schema declares {sorted(known)}")
    out = {}
    for f in fields:
        value = profile.get(f.name)
        if value is None:
            value = unknown_feature_value(f)
        value = np.asarray(value, f.np_dtype)
        if f.multi:
            value = value.reshape(-1)
            if len(value) > f.max_len:
                raise ValueError(f"user feature {f.name!r} has {len(value)} values; the schema's max_len is {f.max_len}")
            value = np.pad(value, (0, f.max_len - len(value)), constant_values=spec_lib.MULTI_PAD)[None, :]
        else:
            if value.ndim:
                raise ValueError(f"user feature {f.name!r} takes one value. Received shape {value.shape}")
            value = value.reshape(1)
        out[f.name] = value
    return out


def user_features(user_id: int, history: Mapping, request_timestamp: Optional[int] = None,
                  max_history_length: Optional[int] = None, user_segment: Optional[int] = None,
                  profile=None, spec: Optional[spec_lib.FeatureSpec] = None,
                  user_vector=None) -> Dict[str, np.ndarray]:
    """One user's ``user_tower`` inputs, batch of one.

    Args:
      user_id: the user id.
      history: mapping with ``item_id``, ``behavior_type``, ``timestamp`` and optionally
        ``duration``, ``amount`` and the schema's behavior features (or the ``hist_*`` names),
        parallel lists, oldest first.
      request_timestamp: epoch seconds of the request; default: one second after the last behavior.
      max_history_length: keep the most recent this many behaviors; default: all.
      user_segment: the default schema's user feature (same as ``profile={"user_segment": s}``).
      profile: the user features, name -> value (``profile_features``); missing ones are unknown.
      spec: the FeatureSpec declaring the features (default: the default schema).
      user_vector: the user's precomputed vector ``[D]`` (``tfrec.data.user_vectors``: the slice in
        force at ``request_timestamp``) when ``spec.user_vector_dim`` D > 0; default: zeros, the
        "no vector" of the training data's lookup.

    Returns:
      ``user_id``, ``request_timestamp``, ``hist_length`` ``[1]``, each user feature ``[1]``
      (multi-valued ``[1, max_len]``), every ``hist_*`` field ``[1, L]`` and, when the spec has
      one, ``user_vector`` ``[1, D]`` float32.

    Raises:
      ValueError: a required field is missing, the lists differ in length, timestamps are not
        sorted, or ``user_vector`` does not fit ``spec.user_vector_dim``; the message names the field.
    """
    if history is None:
        history = {}
    if user_segment is not None:
        profile = {**(profile or {}), spec_lib.USER_SEGMENT: user_segment}
    if profile is None or isinstance(profile, Mapping):
        # A stored history (UserHistories.history) carries the user's features next to its lists.
        names = [f.name for f in (spec or spec_lib.FeatureSpec(n_items=1)).user_fields()]
        profile = {**{n: history[n] for n in names if n in history}, **(profile or {})}
    fields = (spec or spec_lib.FeatureSpec(n_items=1)).history_sequence_features()
    columns = {}
    for f in fields:
        value = _history_field(history, f.name)
        if value is None:
            if f.name in _REQUIRED and history:
                raise ValueError(f"user_history is missing '{f.name[5:]}' (or '{f.name}'): give parallel lists "
                                 "item_id, behavior_type, timestamp [, duration, amount, behavior features], "
                                 "oldest first")
            value = []
        columns[f.name] = np.asarray(value, dtype=f.np_dtype).reshape(-1)
    n = len(columns["hist_item_id"])
    for f in fields:
        value = columns[f.name]
        if len(value) not in (0, n) or (len(value) == 0 and n and f.name in _REQUIRED):
            raise ValueError(f"user_history field '{f.name[5:]}' has {len(value)} entries but item_id has {n}; "
                             "the lists must be parallel")
        if len(value) == 0:
            columns[f.name] = np.full(n, unknown_feature_value(f) if f.schema_name else 0, f.np_dtype)
    ts = columns["hist_timestamp"]
    if n > 1 and np.any(np.diff(ts) < 0):
        raise ValueError("user_history timestamps must be sorted oldest first")
    if request_timestamp is None:
        request_timestamp = int(ts[-1]) + 1 if n else 0
    keep = int(np.searchsorted(ts, request_timestamp, side="left"))  # strictly before the request
    begin = 0 if max_history_length is None else max(0, keep - int(max_history_length))
    out = {name: value[begin:keep][None, :] for name, value in columns.items()}
    out.update({
        "user_id": np.array([user_id], np.int64),
        "request_timestamp": np.array([request_timestamp], np.int64),
        spec_lib.HIST_LENGTH: np.array([keep - begin], np.int32),
    })
    out.update(profile_features(profile, spec))
    dim = spec.user_vector_dim if spec is not None else 0
    if user_vector is not None or dim:
        if not dim:
            raise ValueError("user_vector given but the spec declares no user vector (user_vector_dim=0)")
        value = np.zeros(dim, np.float32) if user_vector is None else np.asarray(user_vector, np.float32).reshape(-1)
        if value.shape != (dim,):
            raise ValueError(f"user_vector must hold spec.user_vector_dim={dim} values. Received: {value.shape[0]}")
        out[spec_lib.USER_VECTOR] = value[None, :]
    return out


def context_features(context: Optional[Mapping], spec: Optional[spec_lib.FeatureSpec] = None) -> Dict[str, np.ndarray]:
    """A request's context features as ``[1]`` arrays (``score`` / ``serving_default`` inputs); the
    schema's context features it lacks get the unknown value.

    Raises:
      ValueError: a name the schema does not declare.
    """
    fields = spec.context_fields() if spec is not None else ()
    context = dict(context or {})
    unknown = sorted(set(context) - {f.name for f in fields})
    if unknown:
        raise ValueError(f"unknown context feature(s) {unknown}; the schema declares {[f.name for f in fields]}")
    return {f.name: np.asarray(context.get(f.name, unknown_feature_value(f)), f.np_dtype).reshape(1) for f in fields}


def stack_features(rows: Sequence[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Concatenates batch-of-one feature dicts, right-padding ``hist_*`` to the longest (>= 1)."""
    def is_history(key):
        return key.startswith("hist_") and rows[0][key].ndim == 2

    width = max([1] + [r[k].shape[1] for r in rows for k in r if is_history(k)])
    out = {}
    for key in rows[0]:
        if is_history(key):
            out[key] = np.concatenate([np.pad(r[key], [(0, 0), (0, width - r[key].shape[1])]) for r in rows])
        else:
            out[key] = np.concatenate([r[key] for r in rows])
    return out


def to_tensor_proto(value) -> "tf.core.framework.tensor_pb2.TensorProto":
    """A numpy array (or scalar/list) as a TensorProto (``tensor_content`` encoding)."""
    return tf.make_tensor_proto(np.asarray(value))


def from_tensor_proto(proto) -> np.ndarray:
    """A TensorProto (``tensor_content`` or typed ``*_val`` fields) as a numpy array."""
    return tf.make_ndarray(proto)


def predict_request(model_name: str, inputs: Mapping[str, np.ndarray], signature_name: str = "",
                    version: Optional[int] = None, version_label: Optional[str] = None,
                    output_filter: Sequence[str] = ()) -> predict_pb2.PredictRequest:
    """A ``PredictRequest`` for ``model_name`` (optionally pinned to a version or a version label)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    elif version_label:
        request.model_spec.version_label = version_label
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(to_tensor_proto(value))
    request.output_filter.extend(output_filter)
    return request
