"""A precomputed user vector (CHIME / LEARN, FeatureSpec.user_vector_dim) through the shared CTRModel path:
every model reads it with no per-model code, it reaches the score, the SavedModel and the learning."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tests.models.test_models import MAKERS, SPEC
from tfrec.export import export_saved_model
from tfrec.export.saved_model import read_warmup_requests
from tfrec.metrics import auc
from tfrec.testing import assert_saved_model_matches, random_features
from tfrec.training import compile_model

D = 4
VSPEC = dataclasses.replace(SPEC, user_vector_dim=D)
EMBEDDING_DIM = 8  # the makers' configs


def _build(name, spec=VSPEC, seed=0):
    tf.keras.utils.set_random_seed(seed)
    model = MAKERS[name](spec=spec)
    model(random_features(spec, 2, 3, seed=0))
    return model


@pytest.mark.parametrize("name", ["din", "dmgin", "siren"])
def test_every_model_trains_on_and_scores_with_the_user_vector(name):
    model = compile_model(_build(name), 1e-2)
    features = random_features(VSPEC, 16, 6, seed=1)
    labels = np.random.default_rng(2).integers(0, 2, 16).astype(np.float32)
    history = model.fit(features, labels, batch_size=8, epochs=1, verbose=0)  # two steps
    assert np.isfinite(history.history["loss"][0])
    assert model.get_layer("user_vector_projection").kernel.shape == (D, EMBEDDING_DIM)

    state = model.encode_user(features)
    assert state["user_embedding"].shape == (16, EMBEDDING_DIM + EMBEDDING_DIM)  # user_segment + projection
    moved = dict(features, user_vector=features["user_vector"] + 1.0)
    assert not np.allclose(model.encode_user(moved)["user_embedding"], state["user_embedding"])
    assert not np.allclose(model(moved).numpy(), model(features).numpy())

    # NaN / inf are read as 0
    bad = features["user_vector"].copy()
    bad[0, 0], bad[1, 2], bad[2, :] = np.nan, np.inf, -np.inf
    zeroed = np.where(np.isfinite(bad), bad, 0.0).astype(np.float32)
    scores = model(dict(features, user_vector=bad)).numpy()
    assert np.all(np.isfinite(scores))
    np.testing.assert_allclose(scores, model(dict(features, user_vector=zeroed)).numpy(), atol=1e-6)

    with pytest.raises(ValueError, match="user_vector"):
        model.encode_user({k: v for k, v in features.items() if k != "user_vector"})


def test_models_without_the_vector_are_unchanged():
    model = _build("din", SPEC)
    assert model.user_vector_projection is None
    assert model.encode_user(random_features(SPEC, 3, 4))["user_embedding"].shape == (3, EMBEDDING_DIM)


def test_export_user_tower_takes_the_user_vector(tmp_path):
    name = "din"  # the export path never branches on the model class
    model = _build(name)
    path = export_saved_model(model, VSPEC, tmp_path, name)
    loaded = tf.saved_model.load(str(path))
    inputs = loaded.signatures["user_tower"].structured_input_signature[1]
    assert inputs["user_vector"].shape.as_list() == [None, D] and inputs["user_vector"].dtype == tf.float32
    features = random_features(VSPEC, 5, 7, seed=3)
    candidates = np.random.default_rng(4).integers(0, VSPEC.n_items, (5, 3))
    served = assert_saved_model_matches(model, VSPEC, path, features, candidates, loaded=loaded)
    moved = dict(features, user_vector=-features["user_vector"])
    served_moved = assert_saved_model_matches(model, VSPEC, path, moved, candidates, loaded=loaded)
    assert not np.allclose(served["score"], served_moved["score"])
    # the warmup requests (built by tfrec.serving.requests) carry a [B, D] float user_vector
    warm = read_warmup_requests(path)[0]
    assert warm.model_spec.signature_name == "user_tower"
    assert tf.make_ndarray(warm.inputs["user_vector"]).shape == (2, D)


def _planted(n, seed):
    """Label = 1 iff the user vector's first component > 0; histories, items and segments are noise."""
    features = random_features(VSPEC, n, 4, seed=seed)
    return features, (features["user_vector"][:, 0] > 0).astype(np.float32)


def test_din_learns_a_label_only_the_user_vector_explains():
    train, train_labels = _planted(2000, seed=10)
    test, test_labels = _planted(600, seed=11)
    results = {}
    for spec in (VSPEC, SPEC):
        model = compile_model(_build("din", spec, seed=5), 1e-2)
        model.fit(train, train_labels, batch_size=64, epochs=4, verbose=0)
        results[spec.user_vector_dim] = auc(test_labels, model.predict(test, batch_size=600, verbose=0))
    assert results[D] > 0.9, results
    assert abs(results[0] - 0.5) < 0.1, results
