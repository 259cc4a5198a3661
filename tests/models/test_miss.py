"""MISS: the two-stage contract, both GSUs against numpy (the ID GSU scored with its ESU's projections),
the window, the id_gsu / mm_gsu switches, gradients, config round trip, learning a planted signal."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tests.models.test_dmqn import LENGTH
from tests.models.test_muse import (
    CONTENT,
    PLANTED_CONTENT,
    PLANTED_SPEC,
    SPEC,
    check_call_is_score_of_encode_user_and_per_candidate,
    check_outputs_ignore_padding_and_cut_behaviors,
    check_registry_roundtrip,
    check_saved_model,
    content_cosine,
    fit_planted,
    make_muse,
    own_item_in_history,
    reference_top_k,
)
from tfrec.configs import MISSConfig, from_dict
from tfrec.data.item_content import ItemContent
from tfrec.models import MISS
from tfrec.testing import random_features

CONFIGS = Path(__file__).resolve().parents[2] / "pipelines" / "configs"
N, K = 12, 4
CONFIG = MISSConfig(embedding_dim=8, history_length=N, gsu_k=K, key_dim=4, short_term_length=5,
                    attention_units=(8,), mlp_units=(16,))


def make_miss(content=CONTENT, **overrides):
    tf.keras.utils.set_random_seed(0)
    return MISS(SPEC, dataclasses.replace(CONFIG, **overrides), item_content=content)


@pytest.fixture(scope="module")
def model():
    m = make_miss()
    m(random_features(SPEC, 2, 3))
    return m


def _state(model, features):
    return {k: v.numpy() for k, v in model.encode_user(features).items()}


def _retrieved(r):
    return np.where(r["mask"].numpy() > 0, r["positions"].numpy(), -1)


def test_user_state_is_the_behavior_window(model):
    for length in (0, 1, 7, 16):
        state = model.encode_user(random_features(SPEC, 4, length, seed=length))
        assert {k: tuple(v.shape) for k, v in state.items()} == {
            "user_embedding": (4, 8), "recent_behaviors": (4, 5, 8), "recent_mask": (4, 5),
            "history_item_id": (4, N), "history_behavior_type": (4, N), "history_mask": (4, N)}
        assert state["history_item_id"].dtype == tf.int32 and state["history_mask"].dtype == tf.float32


def test_call_is_score_of_encode_user_and_per_candidate(model):
    check_call_is_score_of_encode_user_and_per_candidate(model)


def test_outputs_ignore_padding_and_cut_behaviors(model):
    check_outputs_ignore_padding_and_cut_behaviors(model)


def test_both_gsus_match_a_numpy_reference(model):
    features = random_features(SPEC, 6, 16, seed=4)
    state = _state(model, features)
    candidates = np.random.default_rng(5).integers(0, SPEC.n_items, (6, 3))
    r = model.retrieve(state, tf.constant(candidates, tf.int64))
    assert sorted(r) == ["id", "mm"]
    got_id, got_mm = _retrieved(r["id"]), _retrieved(r["mm"])
    # ID GSU: (W_a e_t)·(W_b h_i) / (sqrt(d_h) H) with the ID ESU's query / key kernels
    e_t = model.item_embedding(tf.constant(candidates, tf.int64)).numpy()
    h = model.window_tokens(state).numpy()
    w_a, w_b = model.id_esu.w_q.kernel.numpy(), model.id_esu.w_k.kernel.numpy()
    relevance = np.einsum("bcd,bnd->bcn", e_t @ w_a, h @ w_b) / (np.sqrt(4) * 2)
    cosine = content_cosine(candidates, state["history_item_id"])
    for b in range(6):
        valid = state["history_mask"][b] > 0
        for c in range(3):
            np.testing.assert_array_equal(got_id[b, c], reference_top_k(relevance[b, c], valid, K),
                                          err_msg=f"id {b} {c}")
            np.testing.assert_array_equal(got_mm[b, c], reference_top_k(cosine[b, c], valid, K), err_msg=f"mm {b} {c}")
    np.testing.assert_allclose(np.where(got_id >= 0, r["id"]["scores"].numpy(), 0),
                               np.where(got_id >= 0, np.take_along_axis(relevance, np.maximum(got_id, 0), -1), 0),
                               atol=1e-5)
    assert (got_id[0] == -1).all() and (got_mm[0] == -1).all()  # empty history


@pytest.mark.parametrize("position, inside", [(3, False), (4, True)])
def test_a_behavior_is_retrieved_only_inside_the_window(model, position, inside):
    # 16 behaviors, N = 12: positions 4..15 are searched. The target's own item has cosine 1 (the
    # MM GSU's first pick when searched).
    state = model.encode_user(own_item_in_history(position))
    r = model.retrieve(state, tf.constant([[0]], tf.int64))
    items = state["history_item_id"].numpy()[0]
    assert (items[r["mm"]["positions"].numpy()[0, 0, 0]] == 0) == inside  # the MM GSU's first pick
    for gsu in ("id", "mm"):  # outside: no GSU can reach it
        assert inside or 0 not in items[r[gsu]["positions"].numpy()[0, 0]]
        assert r[gsu]["mask"].numpy().sum() == K


@pytest.mark.parametrize("id_gsu, mm_gsu", [(True, False), (False, True), (True, True)])
def test_gsu_switches(id_gsu, mm_gsu):
    content = CONTENT if mm_gsu else None  # the ID GSU alone needs no content vectors
    m = make_miss(content=content, id_gsu=id_gsu, mm_gsu=mm_gsu)
    features = random_features(SPEC, 3, 10, seed=8)
    p = m(features).numpy()
    assert p.shape == (3,) and np.all(np.isfinite(p))
    cands = tf.constant(features["item_id"][:, None])
    parts = m.head_inputs(m.encode_user(features), cands, m.item_embedding(cands))
    assert [x.shape[-1] for x in parts] == [8] * (id_gsu + mm_gsu)
    assert sorted(m.retrieve(m.encode_user(features), cands)) == ["id"] * id_gsu + ["mm"] * mm_gsu
    names = [w.name for w in m.weights]
    assert any("id_esu" in n for n in names) == id_gsu and any("mm_esu" in n for n in names) == mm_gsu
    assert (m.content is not None) == mm_gsu


def test_the_id_gsu_projections_learn_through_the_esu(model):
    features = random_features(SPEC, 6, 16, seed=9)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(features))
    grads = tape.gradient(loss, [model.id_esu.w_q.kernel, model.id_esu.w_k.kernel, model.mm_esu.w_q.kernel])
    assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in grads)


def test_config_roundtrip_through_the_registry(model):
    check_registry_roundtrip(model)


def test_saved_model_matches_the_keras_model(model, tmp_path):
    check_saved_model(model, tmp_path)


def test_config_validation_and_content_errors():
    for kwargs, match in [(dict(id_gsu=False, mm_gsu=False), "at least one GSU"), (dict(gsu_k=0), "gsu_k"),
                          (dict(short_term_length=-1), "short_term_length"), (dict(dropout=-0.1), "dropout")]:
        with pytest.raises(ValueError, match=match):
            MISSConfig(**kwargs)
    with pytest.raises(ValueError, match="items.npz"):
        make_miss(content=ItemContent())
    with pytest.raises(ValueError, match="num_heads"):
        make_miss(num_heads=3)


def test_shipped_config_is_the_default():
    assert from_dict(MISSConfig, yaml.safe_load((CONFIGS / "miss.yaml").read_text())) == MISSConfig()


def test_miss_learns_a_planted_content_interest():
    # tests/models/test_muse.py's planted data: the click depends on whether the history holds
    # behaviors content-similar to the target. The MM GSU finds them; the ESUs read their ids.
    tf.keras.utils.set_random_seed(0)
    config = dataclasses.replace(CONFIG, history_length=LENGTH, gsu_k=5, short_term_length=0)
    held_out = fit_planted(MISS(PLANTED_SPEC, config, item_content=PLANTED_CONTENT))
    # measured: MISS 0.82 (ceiling ~0.9, chance 0.5)
    assert held_out > 0.7, held_out


def test_the_mm_gsu_alone_is_muse_without_simtier_and_sa_ta():
    # the same GSU (content cosine top-K) and the same plain target attention ESU
    miss = make_miss(id_gsu=False)
    muse = make_muse(simtier=False, semantic_aware_attention=False)
    features = random_features(SPEC, 5, 16, seed=11)
    miss(features), muse(features)
    assert [w.shape for w in miss.get_weights()] == [w.shape for w in muse.get_weights()]
    muse.set_weights(miss.get_weights())
    np.testing.assert_allclose(muse(features).numpy(), miss(features).numpy(), atol=1e-6)
