"""DSIN and DSIN-Full (issue 15): the user state reads the sessions SessionSplit finds (never the
future), padding sessions get no attention, export parity with stock ops only, DSIN-Full on a long
history, and learning on planted data where only the session boundaries tell the label."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfrec import configs as configs_lib
from tfrec.configs import DSINConfig
from tfrec.data.schema import FeatureDef
from tfrec.data.spec import FeatureSpec
from tfrec.export import export_saved_model
from tfrec.export.saved_model import non_stock_ops
from tfrec.models import DSIN, MODELS
from tfrec.testing import assert_saved_model_matches, random_features

from tests.models.planted import N_TRAIN, held_out_auc

N_ITEMS = 30
SPEC = FeatureSpec(n_items=N_ITEMS, max_history_length=12,
                   item_features=(FeatureDef("category", "categorical", vocab_size=3),))
SMALL = DSINConfig(embedding_dim=8, history_length=12, max_sessions=3, session_length=4, num_heads=2, key_dim=4,
                   ffn_dim=8, lstm_units=4, target_key_dim=4, attention_units=(8,), mlp_units=(8,))
CONFIGS = Path(__file__).resolve().parents[2] / "pipelines" / "configs"
HOUR = 3600


class _Table:
    columns = {"category": np.arange(N_ITEMS) % 3}


def _model(**changes):
    tf.keras.utils.set_random_seed(0)
    model = DSIN(SPEC, dataclasses.replace(SMALL, **changes), item_table=_Table())
    model(random_features(SPEC, 2, 3, seed=0))
    return model


def _features(n=4, length=12, seed=1):
    """random_features over half a day: sessions of one and several behaviors."""
    return random_features(SPEC, n, length, seed=seed, span_days=0.3)


def test_user_state_reads_the_sessions_and_never_the_future():
    model = _model()
    f = _features(1)
    request = int(f["request_timestamp"][0])
    # sessions [0, 1], [2, 3, 4, 5, 6] (a gap of exactly 1800 s inside; its last 4 kept), [7, 8];
    # 9 and 10 are at / after the request, 11 is padding
    gaps = [0, 60, 2 * HOUR, 60, 60, 1800, 60, 2 * HOUR, 30, 600]
    f["hist_timestamp"][0, :10] = request - 900 - 5 * HOUR + np.cumsum(gaps)
    f["hist_timestamp"][0, 9], f["hist_timestamp"][0, 10] = request, request + 5
    f["hist_length"][:] = 11
    state = model.encode_user(f)
    # the same, by hand: the positions newest session first, oldest -> newest within
    positions = np.array([[[7, 8, -1, -1], [3, 4, 5, 6], [0, 1, -1, -1]]])
    np.testing.assert_array_equal(model.sessions(f)["positions"].numpy(), positions)
    pick = lambda key: np.take_along_axis(f[key], np.maximum(positions, 0).reshape(1, -1), 1).reshape(1, 3, 4)
    mask = (positions >= 0).astype(np.float32)
    tokens = model.behavior_tokens({"hist_item_id": pick("hist_item_id"),
                                    "hist_behavior_type": pick("hist_behavior_type")}) * mask[..., None]
    interests = model.session_interest({"behaviors": tokens, "mask": mask})
    np.testing.assert_allclose(state["session_interests"].numpy(), interests.numpy(), atol=1e-6)
    np.testing.assert_array_equal(state["session_mask"].numpy(), [[1, 1, 1]])
    # the future behaviors (9, 10), the dropped one (2) and the padding (11) never matter
    g = {k: v.copy() for k, v in f.items()}
    g["hist_item_id"][0, [2, 9, 10, 11]] = [1, 2, 3, 4]
    g["hist_behavior_type"][0, [2, 9, 10, 11]] = 5
    again = model.encode_user(g)
    for key in state:
        np.testing.assert_allclose(again[key].numpy(), state[key].numpy(), atol=1e-6, err_msg=key)


def test_padding_sessions_get_no_attention():
    model = _model()
    f = _features(4)
    f["hist_length"][:] = [0, 1, 2, 12]  # 0, 1, <= 2 sessions and a full row
    state = model.encode_user(f)
    mask = state["session_mask"].numpy()
    assert mask[0].sum() == 0 and mask[1].sum() == 1 and mask[3].sum() == 3
    cand = tf.constant([[0, 5, 7]] * 4, tf.int64)
    scores = model.score(state, cand).numpy()
    noisy = dict(state)
    for key in ("session_interests", "session_states"):
        noisy[key] = tf.where(mask[..., None] > 0, state[key], 1e4)
    np.testing.assert_array_equal(model.score(noisy, cand).numpy(), scores)
    # a user without a session gets zero attention outputs
    emb = model.item_embedding(cand)
    for out in model.head_inputs(state, cand, emb):
        assert (out.numpy()[0] == 0).all()


@pytest.mark.parametrize("changes", [{}, {"interacting": False, "encoding": "sinusoidal", "short_term_length": 4,
                                           "min_session_length": 2, "layer_norm": True}])
def test_export_round_trip(changes, tmp_path):
    model = _model(**changes)
    features = _features(3, seed=4)
    version = export_saved_model(model, SPEC, tmp_path, "dsin")
    got = assert_saved_model_matches(model, SPEC, version, features, np.array([[0, 1, 2, 5]] * 3))
    assert ("session_states" in got["state"]) == model.config.interacting
    assert non_stock_ops(version) == []  # real TF Serving can load it


def test_full_config_on_a_long_history():
    """dsin-full.yaml: the whole 3,000-behavior history is split; attention stays within sessions."""
    from pipelines.common import load_yaml_config

    full = configs_lib.from_dict(DSINConfig, load_yaml_config(CONFIGS / "dsin-full.yaml"))
    plain = configs_lib.from_dict(DSINConfig, load_yaml_config(CONFIGS / "dsin.yaml"))
    assert (full.history_length, plain.max_sessions, plain.session_length) == (0, 5, 10)
    assert full.max_sessions > plain.max_sessions and full.session_length >= plain.session_length
    spec = FeatureSpec(n_items=N_ITEMS, max_history_length=3000)
    tf.keras.utils.set_random_seed(0)
    model = DSIN(spec, full)
    f = random_features(spec, 3, 3000, seed=2, span_days=30)  # ~2 min apart: sessions of a few behaviors
    f["hist_length"][:] = [3000, 100, 0]
    state = model.encode_user(f)
    assert state["session_interests"].shape == (3, full.max_sessions, model.item_embedding.output_dim)
    assert state["session_mask"].numpy()[0].sum() == full.max_sessions  # 3,000 behaviors fill every session
    assert 0 < state["session_mask"].numpy()[1].sum() < full.max_sessions
    assert np.isfinite(model(f).numpy()).all()
    # the oldest kept session is far back: DSIN-Full reaches beyond plain DSIN's 200-behavior window
    oldest = model.sessions(f)["positions"].numpy()[0, -1]
    assert oldest[oldest >= 0].min() < 3000 - plain.history_length


def test_registry_and_config_errors():
    assert MODELS["dsin"] is DSIN and DSIN.model_name == "dsin"
    with pytest.raises(ValueError, match="history_length"):
        DSINConfig(history_length=-1)
    assert _model(history_length=None).session_split.window == 0  # None = the whole history, as 0
    with pytest.raises(ValueError, match="max_sessions"):
        DSINConfig(max_sessions=0)
    with pytest.raises(ValueError, match="encoding"):
        DSINConfig(encoding="positional")
    with pytest.raises(ValueError, match="target_heads=3"):
        _model(target_heads=3)


# -- planted: only the session boundaries tell ----------------------------------------------------
def current_session_intent(n: int = 512, seed: int = 0):
    """Item i has category ``i % 3``. Each user's 12 behaviors: 5-7 old ones of category o, then a
    session of 4 of category r, then the current session of s in {1, 2, 3} of category c (sessions 2 h
    apart, behaviors 1 min apart, the request 5 min after the last). The target is of c (label 1) or of
    r (label 0). The 4 most recent behaviors hold s of c and 4 - s of r: counts never tell (the
    target's category has 1-3 of them either way) and neither does DIN's order-free pooling; the
    session a category lies in does (DSIN's session index: bias encoding and the Bi-LSTM)."""
    rng = np.random.default_rng(seed)
    features = random_features(SPEC, n, 12, seed=seed + 5)
    c = rng.integers(0, 3, n)
    r = (c + rng.integers(1, 3, n)) % 3
    o = 3 - c - r
    s = rng.integers(1, 4, n)
    label = rng.random(n) < 0.5
    pos = np.arange(12)[None, :]
    current, previous = pos >= 12 - s[:, None], (pos >= 8 - s[:, None]) & (pos < 12 - s[:, None])
    category = np.where(current, c[:, None], np.where(previous, r[:, None], o[:, None]))
    features["hist_item_id"] = category + 3 * rng.integers(0, N_ITEMS // 3, (n, 12))
    features["hist_length"] = np.full(n, 12, np.int32)
    session = np.where(current, 2, np.where(previous, 1, 0))
    gap = np.where(np.diff(session, prepend=session[:, :1], axis=1) > 0, 2 * HOUR, 60)
    request = features["request_timestamp"]
    t = np.cumsum(gap, axis=1)
    features["hist_timestamp"] = (request[:, None] - 300 - (t[:, -1:] - t)).astype(np.int64)
    features["item_id"] = np.where(label, c, r) + 3 * rng.integers(0, N_ITEMS // 3, n)
    return features, label


def test_learns_the_current_session_intent():
    """DSIN separates the planted classes; DIN over the 4 most recent cannot, and neither can DSIN
    without any session index (no bias encoding, no Bi-LSTM: an order-free pooling of sessions)."""
    from tfrec.configs import DINConfig
    from tfrec.models import DIN

    features, label = current_session_intent()
    model = _model(short_term_length=0)
    split = model.sessions({k: v[:4] for k, v in features.items()})
    assert split["session_mask"].numpy().tolist() == [[1, 1, 1]] * 4  # current, previous, old
    got = held_out_auc(model, features, label, epochs=30)
    blind = held_out_auc(_model(encoding="none", interacting=False), features, label, epochs=30)
    tf.keras.utils.set_random_seed(0)
    din = DIN(SPEC, DINConfig(embedding_dim=8, recent_length=4, attention_units=(8,), mlp_units=(8,)),
              item_table=_Table())
    baseline = held_out_auc(din, features, label, epochs=30)
    print(f"DSIN {got:.3f}, DSIN without session index {blind:.3f}, DIN (4 recent) {baseline:.3f} "
          f"on {len(label) - N_TRAIN} held-out users")
    assert got > 0.9 and blind < 0.65 and baseline < 0.65, (got, blind, baseline)
