"""DIN, DMGIN, DMQN and SIREN: the shared encode_user / score interface, padding invariance, learning, config."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfrec.configs import DINConfig, DMGINConfig, DMQNConfig, SIRENConfig
from tfrec.data.item_content import ItemContent
from tfrec.data.spec import FeatureSpec
from tfrec.metrics import auc
from tfrec.models import DIN, DMGIN, DMQN, SIREN
from tfrec.testing import assert_nested_allclose, random_features

SPEC = FeatureSpec(n_items=40, n_user_segments=3, max_history_length=16)
NUM_GROUPS = 5  # groups 1..4, 0 reserved
TABLE = np.arange(SPEC.n_items) % (NUM_GROUPS - 1) + 1
DIN_CONFIG = DINConfig(embedding_dim=8, recent_length=5, attention_units=(8,), mlp_units=(16,))
DMGIN_CONFIG = DMGINConfig(embedding_dim=8, top_k_groups=4, max_per_group=3, num_heads=2, hstu_layers=2,
                           hstu_heads=2, short_term_length=5, attention_units=(8,), mlp_units=(16,),
                           time_bucket_days=(1.0, 7.0, 30.0, 90.0))
DMQN_CONFIG = DMQNConfig(embedding_dim=8, num_codebooks=2, codebook_size=6, hstu_layers=1, hstu_heads=2,
                         short_term_length=5, attention_units=(8,), mlp_units=(16,),
                         time_bucket_days=(1.0, 7.0, 30.0, 90.0))
SIREN_CONFIG = SIRENConfig(embedding_dim=8, history_length=12, gsu_k=4, semantic_id_dim=4, num_buckets=5,
                           bucket_dim=4, key_dim=4, short_term_length=5, attention_units=(8,), mlp_units=(16,))
# content vectors in 4 directions (+ noise) and 3-level Semantic IDs whose level 1 is that direction
_rng = np.random.default_rng(123)
CONTENT = ItemContent.from_arrays(
    SPEC.n_items, vectors=np.eye(6)[np.arange(SPEC.n_items) % 4] + 0.3 * _rng.normal(size=(SPEC.n_items, 6)),
    codes=np.stack([np.arange(SPEC.n_items) % 4, _rng.integers(0, 4, SPEC.n_items), _rng.integers(0, 4, SPEC.n_items)],
                   axis=1), codebook_size=4)
ORDER = 4  # index of "order" in BEHAVIOR_TYPES


def make_din(spec=SPEC):
    return DIN(spec, DIN_CONFIG)


def make_dmgin(table=TABLE, spec=SPEC):
    return DMGIN(spec, DMGIN_CONFIG, num_groups=NUM_GROUPS, item_to_group=table)


def make_dmqn(spec=SPEC, **overrides):
    return DMQN(spec, dataclasses.replace(DMQN_CONFIG, **overrides))


def make_siren(content=CONTENT, spec=SPEC, **overrides):
    return SIREN(spec, dataclasses.replace(SIREN_CONFIG, **overrides), item_content=content)


MAKERS = {"din": make_din, "dmgin": make_dmgin, "dmqn": make_dmqn, "siren": make_siren}
EXPECTED_STATE = {
    "din": {"user_embedding": (8,), "recent_behaviors": (5, 8), "recent_mask": (5,)},
    "dmgin": {"user_embedding": (8,), "recent_behaviors": (5, 8), "recent_mask": (5,),
              "group_states": (4, 8), "group_mask": (4,), "group_ids": (4,)},
    "dmqn": {"user_embedding": (8,), "recent_behaviors": (5, 8), "recent_mask": (5,),
             "codeword_states": (12, 8), "codeword_mask": (12,)},
    "siren": {"user_embedding": (8,), "recent_behaviors": (5, 8), "recent_mask": (5,),
              "history_item_id": (12,), "history_behavior_type": (12,), "history_mask": (12,)},
}
INT_STATE = {"group_ids", "history_item_id", "history_behavior_type"}


@pytest.fixture(scope="module", params=sorted(MAKERS))
def model_and_name(request):
    tf.keras.utils.set_random_seed(0)
    model = MAKERS[request.param]()
    model(random_features(SPEC, 2, 3, seed=0))  # build
    return model, request.param


def _state(model, features):
    return {k: v.numpy() for k, v in model.encode_user(features).items()}


def test_user_state_shapes_do_not_depend_on_the_history_length(model_and_name):
    model, name = model_and_name
    for length in (0, 1, 7, 16):
        state = model.encode_user(random_features(SPEC, 4, length, seed=length))
        assert {k: tuple(v.shape) for k, v in state.items()} == {
            k: (4,) + s for k, s in EXPECTED_STATE[name].items()}
        assert all(np.all(np.isfinite(v.numpy())) for v in state.values())
        assert {k: v.dtype for k, v in state.items()} == {
            k: tf.int32 if k in INT_STATE else tf.float32 for k in EXPECTED_STATE[name]}


def test_call_is_score_of_encode_user(model_and_name):
    model, _ = model_and_name
    features = random_features(SPEC, 6, 12, seed=1)
    expected = model.score(model.encode_user(features), features["item_id"][:, None])[:, 0]
    np.testing.assert_allclose(model(features).numpy(), expected.numpy(), atol=1e-6)
    probabilities = model(features).numpy()
    assert probabilities.shape == (6,) and np.all((probabilities > 0) & (probabilities < 1))


def test_score_is_per_candidate(model_and_name):
    # Scoring C candidates at once equals scoring each one alone.
    model, _ = model_and_name
    features = random_features(SPEC, 3, 10, seed=2)
    state = model.encode_user(features)
    candidates = np.array([[0, 5, 39], [7, 7, 1], [40, -1, 3]], np.int64)  # 40, -1: unknown items
    together = model.score(state, candidates).numpy()
    assert together.shape == (3, 3)
    for c in range(3):
        np.testing.assert_allclose(together[:, c], model.score(state, candidates[:, c:c + 1]).numpy()[:, 0],
                                   atol=1e-6)


def test_user_state_ignores_padding(model_and_name):
    model, _ = model_and_name
    features = random_features(SPEC, 6, 12, seed=3)
    state = _state(model, features)
    rng = np.random.default_rng(4)
    pad = np.arange(12)[None, :] >= features["hist_length"][:, None]
    changed = dict(features)
    changed["hist_item_id"] = np.where(pad, rng.integers(0, SPEC.n_items, pad.shape), features["hist_item_id"])
    changed["hist_behavior_type"] = np.where(pad, ORDER, features["hist_behavior_type"])
    # padding may even hold "future" behaviors (after the request) and zeros
    changed["hist_timestamp"] = np.where(pad, features["request_timestamp"][:, None] + 10, features["hist_timestamp"])
    changed["hist_duration"] = np.where(pad, 1e4, features["hist_duration"]).astype(np.float32)
    changed["hist_amount"] = np.where(pad, 0.0, features["hist_amount"]).astype(np.float32)
    assert_nested_allclose(_state(model, changed), state, atol=1e-6)


def test_user_state_ignores_behaviors_cut_from_the_history(model_and_name):
    # A history of N behaviors with hist_length n equals the history cut to its first n behaviors.
    model, _ = model_and_name
    features = random_features(SPEC, 5, 16, seed=5)
    features["hist_length"] = np.array([0, 16, 3, 9, 5], np.int32)
    state = _state(model, features)
    for i, n in enumerate(features["hist_length"]):
        cut = {k: v[i:i + 1] for k, v in features.items()}
        cut.update({k: v[i:i + 1, :n] for k, v in features.items() if k.startswith("hist_") and v.ndim == 2})
        assert_nested_allclose(_state(model, cut), {k: v[i:i + 1] for k, v in state.items()}, atol=1e-5,
                               msg=f"row {i} cut to {n}")


def test_hist_length_longer_than_the_padded_sequence_is_clamped(model_and_name):
    model, _ = model_and_name
    features = random_features(SPEC, 3, 6, seed=6)
    features["hist_length"] = np.array([6, 6, 6], np.int32)
    longer = dict(features, hist_length=np.array([50, 6, 7], np.int32))
    assert_nested_allclose(_state(model, longer), _state(model, features), atol=1e-6)


def test_dmgin_group_states_follow_the_item_group_table():
    # Every history item in one group -> exactly one valid group slot (the newest, position k-1).
    model = make_dmgin(table=np.full(SPEC.n_items, 2))
    features = random_features(SPEC, 4, 10, seed=7)
    features["hist_length"] = np.array([0, 10, 4, 1], np.int32)
    state = _state(model, features)
    np.testing.assert_array_equal(state["group_mask"], [[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1]])
    np.testing.assert_array_equal(state["group_states"][state["group_mask"] == 0], 0.0)
    np.testing.assert_array_equal(state["group_ids"][state["group_mask"] == 1], 2)
    np.testing.assert_array_equal(state["recent_mask"], [[0] * 5, [1] * 5, [0, 1, 1, 1, 1], [0, 0, 0, 0, 1]])


def planted(n, length, seed):
    """label = 1 iff the target's group was ordered somewhere in the (whole) history."""
    features = random_features(SPEC, n, length, seed)
    rng = np.random.default_rng(seed + 1000)
    features["hist_length"] = rng.integers(length // 2, length + 1, n).astype(np.int32)
    features["hist_behavior_type"] = np.where(rng.random((n, length)) < 0.08, ORDER,
                                              rng.integers(0, ORDER, (n, length))).astype(np.int64)
    valid = np.arange(length)[None, :] < features["hist_length"][:, None]
    ordered = (features["hist_behavior_type"] == ORDER) & valid
    same_group = TABLE[features["hist_item_id"]] == TABLE[features["item_id"]][:, None]
    return features, (ordered & same_group).any(axis=1).astype(np.float32)


def test_dmgin_learns_planted_group_interest():
    tf.keras.utils.set_random_seed(0)
    train_x, train_y = planted(400, 16, seed=10)
    test_x, test_y = planted(400, 16, seed=11)
    assert 0.1 < train_y.mean() < 0.5 and 0.1 < test_y.mean() < 0.5
    model = make_dmgin()
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    history = model.fit(train_x, train_y, batch_size=32, epochs=8, verbose=0).history["loss"]
    assert history[-1] < 0.6 * history[0], history
    held_out = auc(test_y, model.predict(test_x, batch_size=400, verbose=0))
    assert held_out > 0.8, held_out


def test_din_fit_reduces_the_loss():
    tf.keras.utils.set_random_seed(0)
    train_x, train_y = planted(200, 16, seed=12)
    model = make_din()
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    history = model.fit(train_x, train_y, batch_size=50, epochs=5, verbose=0).history["loss"]
    assert history[-1] < history[0], history


def test_config_roundtrip_through_the_registry(model_and_name):
    model, name = model_and_name
    serialized = tf.keras.utils.serialize_keras_object(model)
    assert serialized["registered_name"] == f"tfrec>{type(model).__name__}"
    rebuilt = tf.keras.utils.deserialize_keras_object(
        {"class_name": serialized["registered_name"], "config": model.get_config()})
    assert type(rebuilt) is type(model)
    assert rebuilt.spec == model.spec and rebuilt.config == model.config
    assert rebuilt.get_config() == model.get_config()
    features = random_features(SPEC, 4, 9, seed=8)
    rebuilt(features)
    rebuilt.set_weights(model.get_weights())  # includes DMGIN's item -> group table
    np.testing.assert_allclose(rebuilt(features).numpy(), model(features).numpy(), atol=1e-6)
    if name == "dmgin":
        assert rebuilt.num_groups == NUM_GROUPS
        np.testing.assert_array_equal(rebuilt.item_group.table.numpy(), TABLE)
