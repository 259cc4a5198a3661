import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfrec.configs import SIMConfig
from tfrec.data.schema import FeatureDef
from tfrec.data.spec import FeatureSpec
from tfrec.export import export_saved_model
from tfrec.export.saved_model import non_stock_ops
from tfrec.models import MODELS, SIM
from tfrec.testing import assert_saved_model_matches, random_features
from tfrec.training import compile_model

from tests.models.planted import din_auc, held_out_auc, old_category_recall

N_ITEMS = 30
CATEGORY = np.arange(N_ITEMS) % 3  # item i has category i mod 3
SPEC = FeatureSpec(n_items=N_ITEMS, max_history_length=12,
                   item_features=(FeatureDef("category", "categorical", vocab_size=3),))
CONFIG = SIMConfig(embedding_dim=8, history_length=12, gsu_k=3, num_heads=2, key_dim=4, short_term_length=4,
                   attention_units=(8,), mlp_units=(8,))


class _Table:
    columns = {"category": CATEGORY}


def _model(**changes):
    tf.keras.utils.set_random_seed(0)
    model = SIM(SPEC, dataclasses.replace(CONFIG, **changes), item_table=_Table())
    model(random_features(SPEC, 2, 3, seed=0))
    return model


def _state(items):
    """A user state whose window holds ``items`` (oldest first), left-padded to N = 12."""
    n = CONFIG.history_length
    ids = np.full((1, n), -1, np.int32)
    ids[0, n - len(items):] = items
    mask = (ids >= 0).astype(np.float32)
    return {"history_item_id": tf.constant(ids), "history_behavior_type": tf.zeros((1, n), tf.int32),
            "history_mask": tf.constant(mask)}


def test_hard_gsu_keeps_the_k_most_recent_same_category_behaviors():
    model = _model()
    items = [3, 4, 6, 9, 1, 12, 7, 15]  # categories 0 1 0 0 1 0 1 0 ; window positions 4..11
    state = _state(items)
    cand = tf.constant([[0, 1, 2]], tf.int64)  # categories 0, 1, 2
    out = model.retrieve(state, cand, model.item_embedding(cand), model.window_tokens(state))
    pos, mask = out["positions"].numpy()[0], out["mask"].numpy()[0]
    picked = [sorted(int(model_items) for model_items, m in zip(state["history_item_id"].numpy()[0][p], mk) if m)
              for p, mk in zip(pos, mask)]
    assert picked[0] == [9, 12, 15]  # category 0: the 3 most recent of 3, 6, 9, 12, 15
    assert picked[1] == [1, 4, 7]  # category 1: all three
    assert picked[2] == []  # category 2: nothing matches, every slot masked (padding never retrieved)


def test_hard_gsu_on_a_multi_categorical_feature_matches_any_shared_value():
    """MovieLens ``genres``: a behavior sharing one genre with the target matches; padding (-1) never does."""
    genres = np.full((N_ITEMS, 2), -1, np.int64)
    genres[:, 0] = np.arange(N_ITEMS) % 3  # odd items: [i mod 3, -]
    genres[::2] = np.stack([np.full(N_ITEMS // 2, 3), np.arange(0, N_ITEMS, 2) % 3], 1)  # even: [3, i mod 3]
    spec = dataclasses.replace(SPEC, item_features=(FeatureDef("genres", "multi_categorical", vocab_size=4,
                                                               max_len=2),))

    class Table:
        columns = {"genres": genres}

    tf.keras.utils.set_random_seed(0)
    model = SIM(spec, dataclasses.replace(CONFIG, category_feature="genres", gsu_k=4), item_table=Table())
    model(random_features(spec, 2, 3, seed=0))
    state = _state([3, 4, 7, 9, 10, 13, 16])  # [0,-] [3,1] [1,-] [0,-] [3,1] [1,-] [3,1], oldest first
    cand = tf.constant([[0, 1, 5, 29, N_ITEMS + 5]], tf.int64)  # [3,0] [1,-] [2,-] [2,-] unknown (all -1)
    out = model.retrieve(state, cand, model.item_embedding(cand), model.window_tokens(state))
    ids = state["history_item_id"].numpy()[0]
    picked = [sorted(int(ids[p]) for p, m in zip(pos, mk) if m)
              for pos, mk in zip(out["positions"].numpy()[0], out["mask"].numpy()[0])]
    # genre 0 (3, 9: in the other slot than the target's) or genre 3 (4, 10, 16): 5 match, the K = 4 most recent
    assert picked[0] == [4, 9, 10, 16]
    assert picked[1] == [7, 10, 13, 16]  # genre 1 (4, 7, 10, 13, 16; 4 is the oldest)
    assert picked[2] == picked[3] == picked[4] == []  # genre 2: no behavior carries it; unknown matches nothing


def test_soft_gsu_ranks_by_relevance_and_never_retrieves_padding():
    model = _model(gsu="soft")
    state = _state([5, 8])
    cand = tf.constant([[1]], tf.int64)
    emb = model.item_embedding(cand)
    tokens = model.window_tokens(state)
    out = model.retrieve(state, cand, emb, tokens)
    assert out["mask"].numpy().sum() == 2  # only the two real behaviors, K = 3
    r = model.relevance(emb, tokens).numpy()[0, 0]
    first = out["positions"].numpy()[0, 0, 0]
    assert first in (10, 11) and r[first] == r[10:].max()


def test_soft_auxiliary_loss_is_in_training_only_and_trains_the_gsu():
    model = _model(gsu="soft")
    features = random_features(SPEC, 8, 12, seed=1)
    y = tf.constant(np.random.default_rng(0).integers(0, 2, 8), tf.float32)
    compile_model(model, 1e-2)
    with tf.GradientTape() as tape:
        loss = model.compute_loss((features, y), training=True)
    grads = tape.gradient(loss, model.gsu_query.trainable_weights)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)
    # the serving path never reads the auxiliary head
    with tf.GradientTape() as tape:
        probs = model.score(model.encode_user(features), tf.constant([[1, 2]] * 8, tf.int64))
    assert all(g is None for g in tape.gradient(probs, model.gsu_head.trainable_weights))
    plain = _model(gsu="soft", gsu_loss_weight=0.0)
    compile_model(plain, 1e-2)
    assert float(loss) > float(plain.compute_loss((features, y), training=True))


def test_hard_gsu_needs_a_categorical_item_feature():
    with pytest.raises(ValueError, match="category_feature='genre'"):
        SIM(SPEC, dataclasses.replace(CONFIG, category_feature="genre"))
    dense = dataclasses.replace(SPEC, item_features=(FeatureDef("category", "dense", dim=2),))
    with pytest.raises(ValueError, match="categorical or multi_categorical"):
        SIM(dense, CONFIG)
    with pytest.raises(ValueError, match="gsu must be one of"):
        SIMConfig(gsu="medium")
    assert MODELS["sim"] is SIM


@pytest.mark.parametrize("gsu", ["hard", "soft"])
def test_export_round_trip(gsu, tmp_path):
    model = _model(gsu=gsu)
    features = random_features(SPEC, 3, 12, seed=4)
    candidates = np.array([[0, 1, 2, 5]] * 3)
    version = export_saved_model(model, SPEC, tmp_path, "sim")
    assert_saved_model_matches(model, SPEC, version, features, candidates)
    assert non_stock_ops(version) == []  # real TF Serving can load it


def test_hard_sim_learns_the_category_match():
    """Planted (``planted.old_category_recall``): the target's category recalls the 8 oldest
    behaviors; SIM hard finds them by category, DIN over the 4 most recent cannot."""
    sim_auc = held_out_auc(_model(short_term_length=0), *old_category_recall(SPEC, N_ITEMS))
    baseline = din_auc(SPEC, _Table(), N_ITEMS)
    print(f"SIM hard {sim_auc:.3f}, DIN (4 recent) {baseline:.3f}")
    assert sim_auc > 0.9 and baseline < 0.7, (sim_auc, baseline)
