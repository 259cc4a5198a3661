"""DIEN (issue 15): the auxiliary loss against a numpy reference (valid pairs only), the negatives
transform, the auxiliary loss in training only, export parity with stock ops only, and learning on
planted data where the order of the recent behaviors decides the label."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfrec.configs import DIENConfig, DINConfig
from tfrec.data.negatives import HIST_NEGATIVE_ITEM_ID, with_negative_behaviors
from tfrec.data.schema import FeatureDef
from tfrec.data.spec import FeatureSpec
from tfrec.export import export_saved_model
from tfrec.export.saved_model import non_stock_ops
from tfrec.metrics import auc
from tfrec.models import DIEN, DIN, MODELS
from tfrec.testing import assert_saved_model_matches, random_features
from tfrec.training import compile_model

from tests.models.planted import held_out_auc

N_ITEMS = 30
SPEC = FeatureSpec(n_items=N_ITEMS, max_history_length=12)
CONFIG = DIENConfig(embedding_dim=8, sequence_length=5, mlp_units=(8,), attention_units=(8,))


def _model(spec=SPEC, item_table=None, **changes):
    tf.keras.utils.set_random_seed(0)
    model = DIEN(spec, dataclasses.replace(CONFIG, **changes), item_table=item_table)
    model(random_features(spec, 2, 3, seed=0))
    return model


def _features(seed=1):
    """4 users: no history, 2 behaviors, 7 (more than S = 5), 12 (full); padding holds random ids."""
    f = random_features(SPEC, 4, 12, seed=seed)
    f["hist_length"] = np.array([0, 2, 7, 12], np.int32)
    f[HIST_NEGATIVE_ITEM_ID] = np.random.default_rng(seed).integers(0, N_ITEMS, (4, 12))
    return f


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def aux_reference(model, features):
    """numpy L_aux: per user, the window = the last S valid behaviors; for each consecutive pair
    (t, t+1) in it, -log σ(h_t·e_{t+1}) - log(1 - σ(h_t·ê_{t+1})); the mean over all such pairs."""
    s = model.config.sequence_length
    states = model.encode_user(features)["interest_states"].numpy()  # [B, S, d_h], left-padded
    emb = model.item_embedding.id_embedding.embeddings.numpy()
    terms = []
    for b, n in enumerate(features["hist_length"]):
        kept = min(int(n), s)
        items = features["hist_item_id"][b, n - kept:n]
        negatives = features[HIST_NEGATIVE_ITEM_ID][b, n - kept:n]
        h = states[b, s - kept:]
        for t in range(kept - 1):
            terms.append(-np.log(_sigmoid(h[t] @ emb[items[t + 1]]))
                         - np.log(1 - _sigmoid(h[t] @ emb[negatives[t + 1]])))
    return np.mean(terms), len(terms)


def test_auxiliary_loss_matches_numpy_over_valid_pairs_only():
    model = _model(aux_loss_weight=0.5)
    features = _features()
    expected, pairs = aux_reference(model, features)
    assert pairs == 1 + 4 + 4  # 0, 1, 4, 4 pairs: padding and the behaviors before the window never count
    got = model.auxiliary_losses(features, None)
    assert set(got) == {"dien_aux_loss"}
    np.testing.assert_allclose(got["dien_aux_loss"].numpy(), 0.5 * expected, rtol=1e-5)
    # whatever the padding (and the behaviors older than the window) hold, the loss is the same
    changed = {k: v.copy() for k, v in features.items()}
    changed["hist_item_id"][1, 2:], changed[HIST_NEGATIVE_ITEM_ID][1, 2:] = 7, 7
    changed[HIST_NEGATIVE_ITEM_ID][2, :2] = -1
    np.testing.assert_allclose(model.auxiliary_loss(changed).numpy(), expected, rtol=1e-5)
    # no pair at all (histories of 0 or 1 behavior): 0, not NaN
    single = {**features, "hist_length": np.array([0, 1, 0, 1], np.int32)}
    assert float(model.auxiliary_loss(single)) == 0.0


def test_auxiliary_loss_projects_items_when_widths_differ():
    model = _model(gru_units=6)
    assert model.interest_evolution.units == 6 and model.aux_projection is not None
    loss = model.auxiliary_loss(_features())
    assert np.isfinite(loss.numpy()) and model.aux_projection.built
    assert _model(gru_units=8).aux_projection is None  # the item width: h_t · e_{t+1} directly
    assert _model(gru_units=6, aux_loss_weight=0.0).aux_projection is None


def test_missing_negatives_name_the_feature_and_the_fix():
    model = _model()
    features = _features()
    features.pop(HIST_NEGATIVE_ITEM_ID)
    with pytest.raises(ValueError, match="hist_negative_item_id.*prepare_training_data.*aux_loss_weight: 0"):
        model.auxiliary_losses(features, None)
    plain = _model(aux_loss_weight=0.0)
    assert plain.auxiliary_losses(features, None) == {}
    ds = tf.data.Dataset.from_tensor_slices((features, np.ones(4, np.float32))).batch(2)
    assert plain.prepare_training_data(ds) is ds


def _batches(seed=0, features=None):
    features = features if features is not None else random_features(SPEC, 40, 12, seed=2)
    ds = tf.data.Dataset.from_tensor_slices((features, np.ones(40, np.float32))).batch(8)
    return features, with_negative_behaviors(ds, N_ITEMS, seed=seed)


def _drawn(ds):
    return np.concatenate([f[HIST_NEGATIVE_ITEM_ID].numpy() for f, _ in ds])


def test_negatives_shape_range_determinism_and_padding():
    features, ds = _batches()
    neg = _drawn(ds)
    assert neg.shape == features["hist_item_id"].shape and neg.dtype == features["hist_item_id"].dtype
    valid = np.arange(12)[None, :] < features["hist_length"][:, None]
    assert np.all(neg[~valid] == -1)  # never drawn for the padding
    assert np.all((neg[valid] >= 0) & (neg[valid] < N_ITEMS))
    assert not np.any(neg[valid] == features["hist_item_id"][valid])  # never the positive
    assert set(np.unique(neg[valid])) == set(range(N_ITEMS))  # every other item can be drawn (uniform)
    np.testing.assert_array_equal(_drawn(_batches()[1]), neg)  # the same seed replays the same negatives
    assert not np.array_equal(_drawn(ds), neg)  # a second pass (epoch) draws new ones
    assert not np.array_equal(_drawn(_batches(seed=1)[1]), neg)
    # dict-only batches, and a tiny vocabulary: the single other item each time
    only = tf.data.Dataset.from_tensor_slices({"hist_item_id": np.array([[0, 1, 1]]), "hist_length": np.array([3])})
    got = next(iter(with_negative_behaviors(only.batch(1), 2)))[HIST_NEGATIVE_ITEM_ID].numpy()
    np.testing.assert_array_equal(got, [[1, 0, 0]])
    with pytest.raises(ValueError, match="n_items >= 2"):
        with_negative_behaviors(ds, 1)


def test_auxiliary_loss_in_training_only():
    model = _model()
    features = _features()
    y = tf.constant([1.0, 0.0, 1.0, 0.0])
    compile_model(model, 1e-2)
    train = model.compute_loss((features, y), training=True)
    ctr = model.compute_loss((features, y), training=False)
    aux = model.auxiliary_losses(features, y)["dien_aux_loss"]
    np.testing.assert_allclose(train.numpy(), ctr.numpy() + aux.numpy(), rtol=1e-5)
    plain = _model(aux_loss_weight=0.0)
    compile_model(plain, 1e-2)
    raw = {k: v for k, v in features.items() if k != HIST_NEGATIVE_ITEM_ID}  # needs no negatives
    np.testing.assert_allclose(plain.compute_loss((raw, y), training=True).numpy(),
                               plain.compute_loss((raw, y), training=False).numpy(), rtol=1e-6)
    # the serving path never reads the auxiliary loss's own weights, nor the negatives
    projected = _model(gru_units=6)
    projected.auxiliary_loss(features)
    with tf.GradientTape() as tape:
        probs = projected.score(projected.encode_user(raw), tf.constant([[1, 2]] * 4, tf.int64))
    assert all(g is None for g in tape.gradient(probs, projected.aux_projection.trainable_weights))


@pytest.mark.parametrize("changes", [{}, {"evolution": "agru", "short_term_length": 3, "gru_units": 6}])
def test_export_round_trip(changes, tmp_path):
    model = _model(**changes)
    features = random_features(SPEC, 3, 12, seed=4)
    version = export_saved_model(model, SPEC, tmp_path, "dien")
    loaded = tf.saved_model.load(str(version))
    assert set(loaded.signatures) == {"user_tower", "score", "serving_default"}
    assert HIST_NEGATIVE_ITEM_ID not in loaded.signatures["serving_default"].structured_input_signature[1]
    got = assert_saved_model_matches(model, SPEC, version, features, np.array([[0, 1, 2, 5]] * 3), loaded=loaded)
    assert set(got["state"]) >= {"interest_states", "interest_mask", "user_embedding"}
    assert non_stock_ops(version) == []  # real TF Serving can load it


def test_registry_and_config_errors():
    assert MODELS["dien"] is DIEN and DIEN.model_name == "dien"
    for field, value in [("evolution", "lstm"), ("aux_loss_weight", -1.0), ("gru_units", 0),
                         ("sequence_length", 0), ("short_term_length", -1), ("dropout", 1.0)]:
        with pytest.raises(ValueError, match=field):
            DIENConfig(**{field: value})


# -- planted: the order of the recent interests decides ------------------------------------------
PLANTED_SPEC = FeatureSpec(n_items=N_ITEMS, max_history_length=6,
                           item_features=(FeatureDef("category", "categorical", vocab_size=3),))


class _Table:
    columns = {"category": np.arange(N_ITEMS) % 3}


def interest_shift(n=512, seed=0):
    """Item i has category ``i % 3``. Each user's 6 behaviors are 3 of category x, then 3 of y ≠ x:
    the interest moved from x to y. The target is of y (label 1) or of x (label 0). The bag of
    behaviors is the same for both labels (3 of each): only their order tells."""
    rng = np.random.default_rng(seed)
    features = random_features(PLANTED_SPEC, n, 6, seed=seed + 5)
    old = rng.integers(0, 3, n)
    new = (old + rng.integers(1, 3, n)) % 3
    label = rng.random(n) < 0.5

    def items_of(cat, size):
        return cat[:, None] + 3 * rng.integers(0, N_ITEMS // 3, (n, size))

    features["hist_item_id"] = np.concatenate([items_of(old, 3), items_of(new, 3)], axis=1)
    features["hist_length"] = np.full(n, 6, np.int32)
    features["item_id"] = items_of(np.where(label, new, old), 1)[:, 0]
    return features, label


def test_learns_the_order_of_recent_interests():
    """DIEN over the 6 behaviors (auxiliary loss on, negatives from the pipeline) vs DIN attending
    over the same 6 (a bag: order-blind, so near chance)."""
    features, label = interest_shift()
    n_train = 384
    tf.keras.utils.set_random_seed(0)
    model = DIEN(PLANTED_SPEC, DIENConfig(embedding_dim=8, sequence_length=6, mlp_units=(16,)), item_table=_Table())
    train = tf.data.Dataset.from_tensor_slices(({k: v[:n_train] for k, v in features.items()},
                                                label[:n_train].astype(np.float32))).batch(64)
    compile_model(model, 2e-2)
    model.fit(model.prepare_training_data(train), epochs=12, verbose=0)
    got = auc(label[n_train:], model.predict({k: v[n_train:] for k, v in features.items()}, verbose=0))
    tf.keras.utils.set_random_seed(0)
    din = DIN(PLANTED_SPEC, DINConfig(embedding_dim=8, recent_length=6, attention_units=(8,), mlp_units=(16,)),
              item_table=_Table())
    bag = held_out_auc(din, features, label, n_train=n_train, epochs=12, lr=2e-2)
    print(f"dien {got:.3f}, DIN over the same 6 (a bag) {bag:.3f}")
    assert got > 0.9 and bag < 0.65, (got, bag)


def test_a_training_step_runs_the_interest_extractor_once(monkeypatch):
    """compute_loss hands auxiliary_losses this step's user state: the auxiliary loss reuses its h_t."""
    from tfrec.layers import augru

    model = _model()
    features = _features()
    compile_model(model, 1e-2)
    calls = []
    call = augru.AUGRU.call
    monkeypatch.setattr(augru.AUGRU, "call", lambda self, inputs: calls.append(self.name) or call(self, inputs))
    with_state = model.compute_loss((features, tf.ones(len(features["item_id"]))), training=True)
    assert sorted(calls) == ["interest_evolution", "interest_extractor"]
    # the same loss as computing the auxiliary term from scratch
    ctr = model.compute_loss((features, tf.ones(len(features["item_id"]))), training=False)
    np.testing.assert_allclose(with_state.numpy(), (ctr + CONFIG.aux_loss_weight * model.auxiliary_loss(features)).numpy(),
                               rtol=1e-5)
