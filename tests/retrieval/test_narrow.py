"""Scoring SIREN on narrowed states (behaviors retrieved outside the SavedModel) equals the in-graph GSU."""
import numpy as np
import pytest

from tests.models.test_models import CONTENT, SIREN_CONFIG, SPEC, make_siren
from tfrec.retrieval import (
    ScannGSU,
    check_external_retrieval,
    compact_features,
    exact_top_k,
    narrow_state,
    repeat_rows,
)
from tfrec.testing import random_features


def test_narrow_state_right_aligns_the_given_behaviors():
    state = {"user_embedding": np.ones((2, 3), np.float32), "history_item_id": np.full((2, 4), 9, np.int32),
             "history_behavior_type": np.full((2, 4), 1, np.int32), "history_mask": np.ones((2, 4), np.float32)}
    out = narrow_state(state, {"history_item_id": np.array([[5, 6, 7], [8, 0, 0]]),
                               "history_behavior_type": np.array([[2, 3, 4], [5, 0, 0]])}, np.array([3, 1]))
    np.testing.assert_array_equal(out["history_item_id"], [[0, 5, 6, 7], [0, 0, 0, 8]])
    np.testing.assert_array_equal(out["history_behavior_type"], [[0, 2, 3, 4], [0, 0, 0, 5]])
    np.testing.assert_array_equal(out["history_mask"], [[0, 1, 1, 1], [0, 0, 0, 1]])
    assert out["history_item_id"].dtype == np.int32 and out["user_embedding"] is state["user_embedding"]
    with pytest.raises(ValueError, match="behavior fields"):
        narrow_state(state, {"history_item_id": np.zeros((2, 3))}, np.array([3, 1]))
    with pytest.raises(ValueError, match="count"):
        narrow_state(state, {"history_item_id": np.zeros((2, 3)), "history_behavior_type": np.zeros((2, 3))},
                     np.array([4, 1]))


@pytest.mark.parametrize("retrieval", ["exact", "scann"])
def test_scoring_on_externally_retrieved_behaviors_equals_the_in_graph_gsu(retrieval):
    model = make_siren()
    features = random_features(SPEC, 5, 16, seed=11)
    state = {k: v.numpy() for k, v in model.encode_user(features).items()}
    candidates = np.random.default_rng(12).integers(0, SPEC.n_items, (5, 3))
    expected = model.score(state, candidates).numpy()

    gsu = ScannGSU(CONTENT.vectors, exhaustive=True, exact_threshold=0)  # force the ScaNN path (brute force)
    k, (b, c) = SIREN_CONFIG.gsu_k, candidates.shape
    rows = repeat_rows(state, c)
    fields = [f for f in state if f.startswith("history_") and f != "history_mask"]
    behaviors = {f: np.zeros((b * c, k), state[f].dtype) for f in fields}
    count = np.zeros(b * c, np.int64)
    for u in range(b):
        valid = np.flatnonzero(state["history_mask"][u] > 0)
        ids = state["history_item_id"][u, valid]
        if retrieval == "exact":
            positions, _ = exact_top_k(gsu.vectors(ids), gsu.vectors(candidates[u]), k)
        else:
            index = gsu.index(ids)
            assert index.uses_scann or len(ids) == 0
            positions, _ = gsu.retrieve(index, candidates[u], k)
        for j in range(c):
            found = valid[positions[j][positions[j] >= 0]]
            row = u * c + j
            count[row] = len(found)
            for f in fields:
                behaviors[f][row, :len(found)] = state[f][u, found]
    narrowed = narrow_state(rows, behaviors, count)
    got = model.score(narrowed, candidates.reshape(-1, 1)).numpy().reshape(b, c)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def _narrowed_scores(model, features, gsu, k):
    """p(click) with each example's top-k retrieved over its whole history, outside the model."""
    state = {key: v.numpy() for key, v in model.encode_user(features).items()}
    fields = [f for f in state if f.startswith("history_") and f != "history_mask"]
    behaviors = {f: np.zeros((len(features["item_id"]), k), state[f].dtype) for f in fields}
    count = np.zeros(len(features["item_id"]), np.int64)
    for i, n in enumerate(features["hist_length"]):
        ids = features["hist_item_id"][i, :n]
        positions, _ = gsu.retrieve(gsu.index(ids), features["item_id"][i:i + 1], k)
        found = positions[0][positions[0] >= 0]
        count[i] = len(found)
        for f in fields:
            raw = features["hist_" + f[len("history_"):]][i, found]
            behaviors[f][i, :len(found)] = np.where((raw >= 0) & (raw < 2**31), raw, -1) if raw.dtype.kind == "i" else raw
    return model.score(narrow_state(state, behaviors, count), features["item_id"][:, None]).numpy()[:, 0]


@pytest.mark.parametrize("scann", [False, True])
def test_compact_histories_give_the_outputs_of_the_full_ones(scann):
    # the offline GSU keeps the top-K + the S most recent behaviors; histories (16) are longer than
    # the model's window N = 10 >= K + S
    model = make_siren(gsu_k=4, short_term_length=5, history_length=10)
    features = random_features(SPEC, 6, 16, seed=13)
    gsu = ScannGSU(CONTENT.vectors, **({"exhaustive": True, "exact_threshold": 0} if scann else {}))
    # window = N: the in-graph GSU over the N most recent behaviors, unchanged
    compact = compact_features(features, gsu, k=4, recent=5, window=10)
    assert compact["hist_item_id"].shape[1] <= 9 and (compact["hist_length"] <= 9).all()
    for i, n in enumerate(compact["hist_length"]):  # kept behaviors stay in time order
        assert (np.diff(compact["hist_timestamp"][i, :n]) >= 0).all()
    np.testing.assert_allclose(model(compact).numpy(), model(features).numpy(), atol=1e-6)
    # window = None: the whole history, as the serving path that retrieves outside the model
    lifelong = compact_features(features, gsu, k=4, recent=5)
    np.testing.assert_allclose(model(lifelong).numpy(), _narrowed_scores(model, features, gsu, 4), atol=1e-6)
    assert np.abs(model(lifelong).numpy() - model(features).numpy()).max() > 1e-6  # it does see further back
    with pytest.raises(ValueError, match="k >= 1"):
        compact_features(features, gsu, k=0, recent=5)


def test_only_models_that_read_the_window_through_the_cosine_gsu_may_be_narrowed():
    check_external_retrieval(make_siren())
    with pytest.raises(ValueError, match="hard GSU"):
        check_external_retrieval(make_siren(gsu="hard"))
