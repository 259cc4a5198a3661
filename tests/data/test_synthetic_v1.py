"""Tests for the v1 synthetic data generator (kept for reproducibility) and its planted click probability."""
import numpy as np
import pytest

from tfrec.data import spec as spec_lib
from tfrec.data.synthetic import v1 as synthetic

DAY = 86400
T0 = 1_700_000_000
TYPE = {name: i for i, name in enumerate(spec_lib.BEHAVIOR_TYPES)}


@pytest.fixture(scope="module")
def small():
    return synthetic.generate(synthetic.SyntheticConfig.preset("small"))


def _auc(labels, scores):
    """Rank-based (Mann-Whitney) AUC with average ranks for ties."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, np.float64)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each distinct score
    ranks = avg_rank[inverse]
    n_pos = labels.sum()
    n_neg = len(labels) - n_pos
    return (ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _history_arrays(data):
    return {int(h["user_id"]): h for h in data.histories}


def _prob(behaviors, target_topic, request_timestamp):
    """Planted probability for a hand-built history of (topic, type name, timestamp, amount)."""
    topic, btype, ts, amount = zip(*behaviors) if behaviors else ((), (), (), ())
    return float(synthetic.true_click_probability(
        np.array(topic, np.int64), np.array([TYPE[b] for b in btype], np.int64), np.array(ts, np.int64),
        np.array(amount, np.float32), target_topic, request_timestamp))


def test_auc_helper_golden():
    assert _auc([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]) == 1.0
    assert _auc([0, 1, 1, 0], [0.5, 0.5, 0.1, 0.9]) == pytest.approx(0.125)


def test_same_seed_same_data_different_seed_different_data(small):
    again = synthetic.generate(synthetic.SyntheticConfig.preset("small"))
    other = synthetic.generate(synthetic.SyntheticConfig.preset("small", seed=1))
    for name in small.items:
        np.testing.assert_array_equal(small.items[name], again.items[name])
    for h, h2 in zip(small.histories, again.histories):
        assert h.keys() == h2.keys()
        for name in h:
            np.testing.assert_array_equal(h[name], h2[name])
    for split in ("train", "test"):
        for e, e2 in zip(getattr(small, split), getattr(again, split)):
            assert e == e2
    assert not np.array_equal(small.items["embedding"], other.items["embedding"])
    assert not np.array_equal(small.histories[0]["hist_item_id"], other.histories[0]["hist_item_id"])
    assert [e["label"] for e in small.test] != [e["label"] for e in other.test]


def test_fields_match_the_feature_spec(small):
    spec, config = small.spec, small.config
    assert spec.n_items == config.n_items
    assert spec.n_user_segments == config.n_user_segments
    assert spec.max_history_length == config.max_history_length == 400
    assert len(small.histories) == config.n_users
    for h in small.histories:
        assert list(h) == [f.name for f in spec.history_record_features()]
        n = len(h["hist_item_id"])
        assert config.min_history_length <= n <= config.max_history_length
        for f in spec.history_record_features():
            value = np.asarray(h[f.name])
            assert value.dtype == f.np_dtype, f.name
            assert value.shape == ((n,) if f.sequence else ()), f.name
            if f.vocab:
                assert 0 <= value.min() and value.max() < spec.vocab_size(f), f.name
            if f.non_negative:
                assert value.min() >= 0, f.name
    fields = spec.example_record_features(with_true_prob=True)
    assert len(small.train) == config.n_users * config.train_examples_per_user
    assert len(small.test) == config.n_users * config.test_examples_per_user
    for e in small.train + small.test:
        assert list(e) == [f.name for f in fields]
        for f in fields:
            assert np.asarray(e[f.name]).dtype == f.np_dtype, f.name
        assert 0 <= e["item_id"] < spec.n_items
        assert e["label"] in (0, 1)
        assert 0.0 < e["true_prob"] < 1.0
    items = small.items
    np.testing.assert_array_equal(items["item_id"], np.arange(config.n_items))
    assert items["topic"].dtype == np.int64 and items["topic"].shape == (config.n_items,)
    assert items["embedding"].dtype == np.float32
    assert items["embedding"].shape == (config.n_items, config.embedding_dim)


def test_behaviors_are_sorted_and_well_formed(small):
    span_end = small.config.start_timestamp + small.config.time_span_days * DAY
    for h in small.histories:
        ts = h["hist_timestamp"]
        assert np.all(np.diff(ts) >= 0)
        assert ts[0] >= small.config.start_timestamp and ts[-1] < span_end
        is_order = h["hist_behavior_type"] == TYPE["order"]
        assert np.all(h["hist_amount"][is_order] > 0)
        assert np.all(h["hist_amount"][~is_order] == 0)
        assert np.all(h["hist_duration"] > 0)


def test_items_are_revisited_with_varying_behavior_types(small):
    h = small.histories[0]
    items, counts = np.unique(h["hist_item_id"], return_counts=True)
    top = items[np.argmax(counts)]
    assert counts.max() >= 5
    assert len(np.unique(h["hist_behavior_type"][h["hist_item_id"] == top])) >= 2


def test_time_split_and_growing_histories(small):
    hist = _history_arrays(small)
    train_t, test_t = {}, {}
    for split, out in (("train", train_t), ("test", test_t)):
        for e in getattr(small, split):
            out.setdefault(int(e["user_id"]), []).append(int(e["request_timestamp"]))
    for user, times in train_t.items():
        assert max(times) < min(test_t[user])
        # Histories keep growing after the train requests: the test requests see more behaviors.
        ts = hist[user]["hist_timestamp"]
        assert np.searchsorted(ts, min(times)) < np.searchsorted(ts, max(test_t[user]))


def test_true_prob_uses_only_behaviors_before_the_request(small):
    hist = _history_arrays(small)
    topic_of = small.items["topic"]
    for e in small.test[::7] + small.train[::23]:
        h = hist[int(e["user_id"])]
        t_req = int(e["request_timestamp"])
        cut = h["hist_timestamp"] < t_req
        # The stored probability equals the one computed from the history cut before the request.
        p_cut = synthetic.true_click_probability(
            topic_of[h["hist_item_id"][cut]], h["hist_behavior_type"][cut], h["hist_timestamp"][cut],
            h["hist_amount"][cut], topic_of[e["item_id"]], t_req, small.config.truth)
        assert float(p_cut) == pytest.approx(float(e["true_prob"]), rel=1e-6)
    # Behaviors at or after the request never count, even a negative in the target topic.
    past = [(2, "click", T0 - 3 * DAY, 0.0), (2, "order", T0 - 2 * DAY, 40.0)]
    future = [(2, "negative", T0, 0.0), (2, "order", T0 + DAY, 99.0), (5, "click", T0 + 1, 0.0)]
    assert _prob(past + future, 2, T0) == _prob(past, 2, T0)


def test_true_click_logit_golden_value():
    # One click in topic 2, one day before the request: bias + alpha log1p(1) + gamma exp(-1/30).
    truth = synthetic.PlantedTruth()
    expected = truth.bias + truth.affinity_weight * np.log1p(1.0) + truth.recency_weight * np.exp(-1 / 30)
    logit = synthetic.true_click_logit([2], [TYPE["click"]], [T0 - DAY], [0.0], 2, T0)
    assert float(logit) == pytest.approx(expected)
    # A topic never touched gets the bias; an order adds a log1p(amount) term.
    assert float(synthetic.true_click_logit([2], [TYPE["click"]], [T0 - DAY], [0.0], 3, T0)) == truth.bias
    w_order = 3.0 + truth.amount_weight * np.log1p(20.0)
    logit = synthetic.true_click_logit([2], [TYPE["order"]], [T0 - DAY], [20.0], 2, T0)
    assert float(logit) == pytest.approx(
        truth.bias + truth.affinity_weight * np.log1p(w_order) + truth.recency_weight * np.exp(-1 / 30))
    # Vectorised over requests.
    logits = synthetic.true_click_logit([2, 3], [1, 1], [T0 - DAY, T0 - 2 * DAY], [0, 0], [2, 3, 4], T0)
    assert logits.shape == (3,)
    assert logits[2] == truth.bias


def test_late_negative_in_the_target_topic_lowers_true_prob():
    clicks = [(4, "click", T0 - (40 - d) * DAY, 0.0) for d in range(10)]
    late_negative = clicks + [(4, "negative", T0 - 20 * DAY, 0.0)]
    negative_then_click = clicks + [(4, "negative", T0 - 20 * DAY, 0.0), (4, "click", T0 - 19 * DAY, 0.0)]
    other_topic_negative = clicks + [(7, "negative", T0 - 20 * DAY, 0.0)]
    base = _prob(clicks, 4, T0)
    assert _prob(late_negative, 4, T0) < _prob([], 4, T0) < base
    # Order matters: a negative followed by a positive behavior does not cancel the interest.
    assert _prob(negative_then_click, 4, T0) > base
    # A negative in another topic does not touch this one.
    assert _prob(other_topic_negative, 4, T0) == pytest.approx(_prob(clicks, 4, T0))


def test_more_and_stronger_behaviors_raise_true_prob():
    t = T0 - 10 * DAY
    few = [(1, "click", t, 0.0)] * 2
    many = [(1, "click", t, 0.0)] * 20
    views = [(1, "view", t, 0.0)] * 5
    carts = [(1, "cart", t, 0.0)] * 5
    orders = [(1, "order", t, 30.0)] * 5
    big_orders = [(1, "order", t, 300.0)] * 5
    assert _prob(few, 1, T0) < _prob(many, 1, T0)
    assert _prob(views, 1, T0) < _prob(carts, 1, T0) < _prob(orders, 1, T0) < _prob(big_orders, 1, T0)


def test_recency_of_the_group_raises_true_prob():
    recent = [(3, "click", T0 - (5 + d) * DAY, 0.0) for d in range(5)]
    old = [(3, "click", T0 - (300 + d) * DAY, 0.0) for d in range(5)]
    assert _prob(old, 3, T0) < _prob(recent, 3, T0)


def test_oracle_auc_and_base_ctr(small):
    for split in ("train", "test"):
        user_ids, labels, probs = synthetic.oracle_metrics_inputs(small, split)
        assert user_ids.dtype == np.int64 and labels.dtype == np.int64 and probs.dtype == np.float32
        assert len(labels) == len(getattr(small, split))
        assert 0.1 < labels.mean() < 0.25
        assert abs(labels.mean() - probs.mean()) < 0.03  # labels ~ Bernoulli(true_prob)
        assert _auc(labels, probs) > 0.75
    # Labels vary within users (GAUC needs both classes).
    user_ids, labels, _ = synthetic.oracle_metrics_inputs(small, "train")
    per_user = np.bincount(user_ids, weights=labels) / np.bincount(user_ids)
    assert np.mean((per_user > 0) & (per_user < 1)) > 0.7
    with pytest.raises(ValueError, match="Received: split='valid'"):
        synthetic.oracle_metrics_inputs(small, "valid")


def _topic_count_features(data, examples, window):
    """[1, log1p(n), n > 0] with n = behaviors in the target's topic among the last ``window``."""
    hist = _history_arrays(data)
    topic_of = data.items["topic"]
    rows = []
    for e in examples:
        h = hist[int(e["user_id"])]
        end = np.searchsorted(h["hist_timestamp"], e["request_timestamp"], side="left")
        start = 0 if window is None else max(0, end - window)
        n = np.sum(data.hist_topic(h)[start:end] == topic_of[e["item_id"]])
        rows.append([1.0, np.log1p(n), float(n > 0)])
    return np.array(rows)


def test_last_50_behaviors_miss_the_long_term_interest(small):
    """A DIN-like view (last 50 behaviors) recovers clearly less signal than the whole history."""
    _, y_train, _ = synthetic.oracle_metrics_inputs(small, "train")
    _, y_test, _ = synthetic.oracle_metrics_inputs(small, "test")
    auc = {}
    for window in (50, None):
        x_train = _topic_count_features(small, small.train, window)
        x_test = _topic_count_features(small, small.test, window)
        coef = np.linalg.lstsq(x_train, y_train.astype(np.float64), rcond=None)[0]
        auc[window] = _auc(y_test, x_test @ coef)
    assert auc[None] > auc[50] + 0.03, auc


def test_embeddings_cluster_by_topic(small):
    emb, topic = small.items["embedding"], small.items["topic"]
    centroids = np.stack([emb[topic == c].mean(axis=0) for c in range(small.config.n_topics)])
    dist = ((emb[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
    assert np.mean(dist.argmin(axis=1) == topic) == 1.0
    assert np.all(np.bincount(topic) >= small.config.n_items // small.config.n_topics)


def test_presets_and_validation():
    medium = synthetic.SyntheticConfig.preset("medium")
    long = synthetic.SyntheticConfig.preset("long", seed=5)
    assert medium.max_history_length == 1500 and medium.n_users == 2000
    assert long.max_history_length == 10000 and long.seed == 5
    with pytest.raises(ValueError, match="Received: name='huge'"):
        synthetic.SyntheticConfig.preset("huge")
    with pytest.raises(ValueError, match="Received: min_history_length=5, max_history_length=4"):
        synthetic.SyntheticConfig(min_history_length=5, max_history_length=4)
    with pytest.raises(ValueError, match="Received: n_users=0"):
        synthetic.SyntheticConfig(n_users=0)
    with pytest.raises(ValueError, match="behavior_weights"):
        synthetic.PlantedTruth(behavior_weights=(1.0,))
