"""Shared test helpers: layer config round trips, random model features, SavedModel checks.

Used by ``tests/`` (and usable by anyone adding a layer or model):

* ``assert_layer_config_roundtrip``: a layer rebuilt from its config through the ``tfrec>``
  registration (no ``custom_objects``), with the original weights, gives identical outputs.
* ``random_features``: a valid model-features dict (the padded tensors every model and every
  serving signature sees) for a FeatureSpec.
* ``assert_saved_model_matches``: an exported version's ``user_tower`` -> ``score`` and
  ``serving_default`` agree with each other and with the Keras model.
* ``assert_nested_allclose``: compares nested dicts/lists of tensors or arrays.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf

from tfrec.data.spec import HIST_LENGTH, SECONDS_PER_DAY, SEQUENCE_FEATURES, USER_VECTOR, FeatureSpec
from tfrec.serving.requests import random_feature_values



def _to_numpy(x):
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def assert_nested_allclose(actual, expected, atol: float = 1e-6, rtol: float = 0.0, msg: str = ""):
    """``np.testing.assert_allclose`` over two structures with the same nesting (dict keys included)."""
    tf.nest.assert_same_structure(actual, expected)
    paths = [p for p, _ in _flatten_with_paths(expected)]
    for path, a, e in zip(paths, tf.nest.flatten(actual), tf.nest.flatten(expected)):
        a, e = _to_numpy(a), _to_numpy(e)
        assert a.shape == e.shape, f"{msg} {path}: shape {a.shape} != {e.shape}"
        if a.dtype == bool or np.issubdtype(a.dtype, np.integer):
            np.testing.assert_array_equal(a, e, err_msg=f"{msg} {path}")
        else:
            np.testing.assert_allclose(a, e, atol=atol, rtol=rtol, err_msg=f"{msg} {path}")


def _flatten_with_paths(structure, prefix=""):
    if isinstance(structure, dict):
        out = []
        for key in sorted(structure):
            out += _flatten_with_paths(structure[key], f"{prefix}/{key}")
        return out
    if isinstance(structure, (list, tuple)):
        out = []
        for i, value in enumerate(structure):
            out += _flatten_with_paths(value, f"{prefix}[{i}]")
        return out
    return [(prefix or "<value>", structure)]


def assert_layer_config_roundtrip(layer: tf.keras.layers.Layer, inputs, atol: float = 0.0, expected_shapes=None,
                                  **call_kwargs):
    """Calls ``layer``, rebuilds it from its config, copies the weights, checks identical outputs.

    The rebuilt layer is resolved by its registered name (``tfrec>ClassName``) through
    ``tf.keras.layers.deserialize``: no ``custom_objects``, no module import path. Its
    ``get_config()`` must equal the original's.

    Args:
      layer: the layer (built or not).
      inputs: what ``layer`` is called with.
      atol: tolerance of the output comparison. Default 0 (identical).
      expected_shapes: optional structure of output shapes (tuples), nested like the outputs.
      **call_kwargs: extra call arguments (e.g. ``training=False``).

    Returns:
      ``(rebuilt_layer, outputs)``.
    """
    outputs = layer(inputs, **call_kwargs)
    if expected_shapes is not None:
        actual = tf.nest.map_structure(lambda t: tuple(t.shape), outputs)
        assert actual == expected_shapes, f"{type(layer).__name__} output shapes {actual} != {expected_shapes}"
    serialized = tf.keras.layers.serialize(layer)
    registered = serialized.get("registered_name")
    assert registered == f"tfrec>{type(layer).__name__}", (
        f"{type(layer).__name__} is not registered with tfrec.registry.register (registered_name={registered!r})")
    config = layer.get_config()
    # Resolve by the registered name only (drop the module path and the build config).
    rebuilt = tf.keras.layers.deserialize({"class_name": registered, "config": config})
    assert type(rebuilt) is type(layer), f"deserialized {type(rebuilt)} instead of {type(layer)}"
    assert rebuilt.get_config() == config, f"config changed in the round trip:\n{rebuilt.get_config()}\n!=\n{config}"
    rebuilt(inputs, **call_kwargs)  # build
    assert len(rebuilt.weights) == len(layer.weights), (
        f"rebuilt layer has {len(rebuilt.weights)} weights, original has {len(layer.weights)}")
    rebuilt.set_weights(layer.get_weights())
    again = rebuilt(inputs, **call_kwargs)
    assert_nested_allclose(again, outputs, atol=atol, msg=f"{type(layer).__name__} round trip")
    return rebuilt, outputs


def random_features(spec: FeatureSpec, batch: int, length: int, seed: int = 0,
                    request_timestamp: int = 1_700_000_000, span_days: float = 400.0) -> Dict[str, np.ndarray]:
    """A random model-features dict (numpy), as the tf.data pipeline and the signatures produce it.

    Keys: ``user_id``, the spec's user and context features (default schema: ``user_segment``),
    ``item_id``, ``request_timestamp`` and the padded history
    ``hist_item_id``, ``hist_behavior_type``, ``hist_timestamp`` (ascending along each row and
    strictly before ``request_timestamp``, over ``span_days``), ``hist_duration``, ``hist_amount``
    (0 for most behaviors, positive for some), each ``[batch, length]``, plus ``hist_length``
    int32 ``[batch]``, plus each declared behavior feature ``hist_<name>``, plus ``user_vector``
    ``[batch, D]`` float32 (standard normal) when ``spec.user_vector_dim`` D > 0. Row 0 has an empty
    history and row 1 a full one (when ``batch`` allows);
    the others have random lengths. Positions beyond ``hist_length`` hold random values from the
    same ranges (not zero padding), so a model that reads padding is caught.
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, length + 1, size=batch)
    if batch >= 1:
        lengths[0] = 0
    if batch >= 2:
        lengths[1] = length
    span = int(span_days * SECONDS_PER_DAY)
    ages = np.sort(rng.integers(1, span, size=(batch, length)), axis=1)[:, ::-1]  # oldest first
    features = {
        "user_id": rng.integers(0, 10_000, size=batch).astype(np.int64),
        "item_id": rng.integers(0, spec.n_items, size=batch).astype(np.int64),
        "request_timestamp": np.full(batch, request_timestamp, np.int64)
        + rng.integers(0, SECONDS_PER_DAY, size=batch),
        "hist_item_id": rng.integers(0, spec.n_items, size=(batch, length)).astype(np.int64),
        "hist_behavior_type": rng.integers(0, spec.n_behavior_types, size=(batch, length)).astype(np.int64),
        "hist_duration": rng.exponential(30.0, size=(batch, length)).astype(np.float32),
        "hist_amount": np.where(rng.random((batch, length)) < 0.3,
                                rng.exponential(50.0, size=(batch, length)), 0.0).astype(np.float32),
        HIST_LENGTH: lengths.astype(np.int32),
    }
    features["hist_timestamp"] = (features["request_timestamp"][:, None] - ages).astype(np.int64)
    for fd in spec.user_features + spec.context_features:
        features[fd.name] = np.stack([random_feature_values(fd, rng) for _ in range(batch)])
    for fd in spec.behavior_features:
        features[f"hist_{fd.name}"] = random_feature_values(fd, rng, batch * length).reshape(batch, length)
    if spec.user_vector_dim:
        features[USER_VECTOR] = rng.normal(size=(batch, spec.user_vector_dim)).astype(np.float32)
    assert set(features) >= {f.name for f in SEQUENCE_FEATURES}
    return features


def user_inputs(spec: FeatureSpec, features: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    """The ``user_tower`` inputs of ``features``, cast to the signature dtypes."""
    return {name: tf.cast(features[name], sig.dtype) for name, sig in spec.user_input_signature().items()}


def context_inputs(spec: FeatureSpec, features: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    """The context inputs of ``score`` / ``serving_default`` in ``features``, cast to the signature dtypes."""
    return {name: tf.cast(features[name], sig.dtype) for name, sig in spec.context_input_signature().items()}


def assert_saved_model_matches(model, spec: FeatureSpec, version_dir: os.PathLike, features: Dict[str, Any],
                               candidates, atol: float = 1e-5, loaded: Optional[Any] = None) -> Dict[str, Any]:
    """Checks an exported version against the Keras model, through all three signatures.

    Loads ``version_dir`` with ``tf.saved_model.load`` (unless ``loaded`` is given) and checks
    ``score(user_tower(x)) == serving_default(x) == model.score(model.encode_user(x), candidates)``
    within ``atol``, and that ``user_tower`` returns the model's user state.

    Returns:
      dict with ``state`` (user_tower outputs), ``score`` and ``serving_default`` probabilities
      as numpy arrays.
    """
    loaded = loaded if loaded is not None else tf.saved_model.load(str(version_dir))
    x = user_inputs(spec, features)
    context = context_inputs(spec, features)
    candidates = tf.cast(candidates, tf.int64)
    state = loaded.signatures["user_tower"](**x)
    scored = loaded.signatures["score"](**state, **context, candidate_item_id=candidates)["probabilities"]
    end_to_end = loaded.signatures["serving_default"](**x, **context, candidate_item_id=candidates)["probabilities"]

    eager_state = model.encode_user(x, training=False)
    eager = model.score(eager_state, candidates, context, training=False)
    assert_nested_allclose({k: state[k] for k in eager_state}, eager_state, atol=atol, msg="user_tower vs model")
    np.testing.assert_allclose(scored.numpy(), end_to_end.numpy(), atol=atol,
                               err_msg="score(user_tower(x)) != serving_default(x)")
    np.testing.assert_allclose(end_to_end.numpy(), eager.numpy(), atol=atol,
                               err_msg="serving_default(x) != model.score(model.encode_user(x))")
    return {"state": {k: v.numpy() for k, v in state.items()}, "score": scored.numpy(),
            "serving_default": end_to_end.numpy()}
