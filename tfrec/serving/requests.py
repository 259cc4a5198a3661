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

HISTORY_FIELDS = tuple(f.name for f in spec_lib.SEQUENCE_FEATURES)  # hist_item_id, ...
_DTYPES = {f.name: f.np_dtype for f in spec_lib.SEQUENCE_FEATURES}
_REQUIRED = ("hist_item_id", "hist_behavior_type", "hist_timestamp")


def _history_field(history: Mapping, name: str):
    """Accepts ``hist_item_id`` or the short ``item_id`` spelling."""
    if name in history:
        return history[name]
    short = name[len("hist_"):]
    return history.get(short)


def user_features(user_id: int, history: Mapping, request_timestamp: Optional[int] = None,
                  max_history_length: Optional[int] = None, user_segment: int = 0) -> Dict[str, np.ndarray]:
    """One user's ``user_tower`` inputs, batch of one.

    Args:
      user_id: the user id.
      history: mapping with ``item_id``, ``behavior_type``, ``timestamp`` and optionally
        ``duration``, ``amount`` (or the ``hist_*`` names), parallel lists, oldest first.
      request_timestamp: epoch seconds of the request; default: one second after the last behavior.
      max_history_length: keep the most recent this many behaviors; default: all.
      user_segment: the user's profile segment.

    Returns:
      ``user_id``, ``user_segment``, ``request_timestamp``, ``hist_length`` ``[1]`` and every
      ``hist_*`` field ``[1, L]``.

    Raises:
      ValueError: a required field is missing, the lists differ in length, or timestamps are not
        sorted; the message names the field.
    """
    if history is None:
        history = {}
    columns = {}
    for name in HISTORY_FIELDS:
        value = _history_field(history, name)
        if value is None:
            if name in _REQUIRED and history:
                raise ValueError(f"user_history is missing '{name[5:]}' (or '{name}'): give parallel lists "
                                 "item_id, behavior_type, timestamp [, duration, amount], oldest first")
            value = []
        columns[name] = np.asarray(value, dtype=_DTYPES[name]).reshape(-1)
    n = len(columns["hist_item_id"])
    for name, value in columns.items():
        if len(value) not in (0, n) or (len(value) == 0 and n and name in _REQUIRED):
            raise ValueError(f"user_history field '{name[5:]}' has {len(value)} entries but item_id has {n}; "
                             "the lists must be parallel")
        if len(value) == 0:
            columns[name] = np.zeros(n, _DTYPES[name])
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
        "user_segment": np.array([user_segment], np.int64),
        "request_timestamp": np.array([request_timestamp], np.int64),
        spec_lib.HIST_LENGTH: np.array([keep - begin], np.int32),
    })
    return out


def stack_features(rows: Sequence[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Concatenates batch-of-one feature dicts, right-padding ``hist_*`` to the longest (>= 1)."""
    width = max([1] + [r["hist_item_id"].shape[1] for r in rows])
    out = {}
    for key in rows[0]:
        if key in _DTYPES:
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
