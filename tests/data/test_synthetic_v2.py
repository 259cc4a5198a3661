"""Tests for the v2 synthetic generator: determinism, the planted truth (golden, no leakage), each
term's measured effect, the shortcut ceilings and the statistics of the planted structure."""
from collections import Counter
import dataclasses
import math

import numpy as np
import pytest

from tfrec.data import spec as spec_lib
from tfrec.data import synthetic
from tfrec.data.synthetic import report as report_lib
from tfrec.data.synthetic import v2

DAY = 86400
T0 = 1_700_000_000
TYPE = {name: i for i, name in enumerate(spec_lib.BEHAVIOR_TYPES)}


@pytest.fixture(scope="module")
def small():
    return synthetic.generate(synthetic.preset("small"))


@pytest.fixture(scope="module")
def small_report(small):
    # Train and test examples (9,000) so that every term's effect is measured, not noise.
    return report_lib.report(small, splits=("train", "test"))


def _purity(assignment, truth):
    """Share of items whose cluster's majority truth label is their own."""
    hits = 0
    for c in np.unique(assignment):
        hits += Counter(truth[assignment == c].tolist()).most_common(1)[0][1]
    return hits / len(truth)


# ---------------------------------------------------------------------------------------------
# The planted truth on a hand-built world
# ---------------------------------------------------------------------------------------------

# 4 topics in 2 categories (topic // 2); chain 0 -> 2, 1 -> 3, 2 -> 0, 3 -> 1; items 0..7 with
# audience topic item // 2, except item 7 whose content says topic 0 (misaligned).
WORLD = v2.World(topic=np.array([0, 0, 1, 1, 2, 2, 3, 3]), content_topic=np.array([0, 0, 1, 1, 2, 2, 3, 0]),
                 category_of_topic=np.array([0, 0, 1, 1]), successors=np.array([[2], [3], [0], [1]]),
                 embedding=np.zeros((8, 2), np.float32))
TRUTH = v2.PlantedTruth(behavior_weights=(0.5, 1.0, 2.0, 2.0, 3.0, 0.0), amount_weight=0.0, intensity=1.0,
                        recency=1.0, recency_days=1.0, funnel=(0.0, 0.3, 0.6, 1.2, -0.6, 0.0), order=1.0,
                        negative_penalty=2.0, hierarchy=1.0, evolution=1.0, session=1.0, session_window_s=3600.0,
                        sibling_share=0.5, repeat=1.0, bias=-3.0)
T = T0 + 10 * DAY
# (item, type, timestamp): a) topic 0 click; b) sibling topic 1 order; c) topic 2 (a predecessor of
# topic 0) view before the last topic-0 behavior; d) topic 0 cart = the group's latest behavior L;
# e) topic 2 cart after L; f) sibling topic 1 view 10 minutes before the request; g) the future.
HISTORY = [(0, "click", T0), (2, "order", T0 + DAY), (4, "view", T0 + 2 * DAY), (1, "cart", T0 + 5 * DAY),
           (4, "cart", T0 + 9 * DAY), (3, "view", T - 600), (0, "view", T + 5)]


def _logit(history, target_item, drop=()):
    item, btype, ts = zip(*history)
    return float(v2.true_click_logit(WORLD, np.array(item), np.array([TYPE[b] for b in btype]), np.array(ts),
                                     np.full(len(item), 10.0), [target_item], [T], TRUTH, drop=drop)[0])


def test_true_click_logit_golden_values():
    # Target item 1 (topic 0, category 0), by hand:
    #   W = a + d = 1 + 2;  R = exp(-(10 - 5) days / 1 day);  F = funnel[cart] = 1.2, N = 0
    #   H = b + f = 3 + 0.5 (sibling topic 1);  E = e = 2 (c precedes L);  S = 0.5 * f (sibling, recent)
    #   I = d = 2 (the target item itself);  g lies after the request and never counts.
    group = math.log(4) + math.exp(-5) + 1.2 + math.log(4.5) + math.log(3)
    expected = -3.0 + group + math.log(3) + math.log(1.5)
    assert _logit(HISTORY, 1) == pytest.approx(expected, abs=1e-9)
    # A negative on topic 0 after d becomes L: it cancels the group terms and costs beta = 2;
    # E still counts e (after the negative), S is unchanged.
    with_negative = HISTORY + [(0, "negative", T0 + 6 * DAY)]
    with_negative.sort(key=lambda b: b[2])
    assert _logit(with_negative, 1) == pytest.approx(-3.0 - 2.0 + math.log(3) + math.log(1.5), abs=1e-9)
    # Misaligned item 7: audience topic 3 (category 1). H = c + e = 2.5 (topic 2 is its sibling);
    # E = b + f = 3.5 (topic 1 precedes topic 3; no topic-3 behavior, so all count); no session, no repeat.
    assert _logit(HISTORY, 7) == pytest.approx(-3.0 + math.log(3.5) + math.log(4.5), abs=1e-9)
    # Read by its content (topic 0) it looks like item 1 without the repeat term.
    expected_content = -3.0 + math.log(4) + math.exp(-5) + 1.2 + math.log(4.5) + math.log(3) + math.log(1.5)
    assert _logit(HISTORY, 7, drop=["misalignment"]) == pytest.approx(expected_content, abs=1e-9)


def test_each_term_switches_off_alone():
    full = _logit(HISTORY, 1)
    assert _logit(HISTORY, 1, drop=["intensity"]) == pytest.approx(full - math.log(4))
    assert _logit(HISTORY, 1, drop=["recency"]) == pytest.approx(full - math.exp(-5))
    assert _logit(HISTORY, 1, drop=["order"]) == pytest.approx(full - 1.2)
    assert _logit(HISTORY, 1, drop=["hierarchy"]) == pytest.approx(full - math.log(4.5))
    assert _logit(HISTORY, 1, drop=["evolution"]) == pytest.approx(full - math.log(3))
    assert _logit(HISTORY, 1, drop=["session"]) == pytest.approx(full - math.log(1.5))
    assert _logit(HISTORY, 1, drop=["repeat"]) == pytest.approx(full - math.log(3))
    with pytest.raises(ValueError, match="Unknown planted term"):
        TRUTH.without("bogus")


def test_the_order_term_owns_the_negative_gate():
    # Dropping "order" removes F and the negative's penalty and gate together: on a group closed by
    # a negative, the group terms come back (the docstring's definition of the order term).
    with_negative = sorted(HISTORY + [(0, "negative", T0 + 6 * DAY)], key=lambda b: b[2])
    no_order = _logit(with_negative, 1, drop=["order"])
    # W = 1 + 2 + 0 (a negative weighs 0); R from the negative at day 6; F off; H, I, E, S as before.
    group = math.log(4) + math.exp(-4) + math.log(4.5) + math.log(3)
    assert no_order == pytest.approx(-3.0 + group + math.log(3) + math.log(1.5), abs=1e-9)
    # The penalty alone at 0 keeps the gate: the order term is on while either weight is non-zero.
    truth = dataclasses.replace(TRUTH, negative_penalty=0.0)
    item, btype, ts = zip(*with_negative)
    gated = float(v2.true_click_logit(WORLD, np.array(item), np.array([TYPE[b] for b in btype]), np.array(ts),
                                      np.zeros(len(item)), [1], [T], truth)[0])
    assert gated == pytest.approx(-3.0 + math.log(3) + math.log(1.5), abs=1e-9)


def test_order_amounts_add_to_the_weight():
    truth = dataclasses.replace(TRUTH, amount_weight=0.5)
    history = [(0, "order", T0)]
    item, btype, ts = zip(*history)
    got = float(v2.true_click_logit(WORLD, np.array(item), np.array([TYPE[b] for b in btype]), np.array(ts),
                                    np.array([20.0]), [1], [T], truth)[0])
    w = 3.0 + 0.5 * math.log1p(20.0)
    # W = w; R = exp(-10); F = funnel[order] = -0.6; no sibling, predecessor, session or repeat.
    assert got == pytest.approx(-3.0 + math.log1p(w) + math.exp(-10) - 0.6, abs=1e-9)


def test_order_of_groups_and_inside_a_group_matters():
    # Evolution: the same behaviors, with the predecessor engagement before the group's latest
    # behavior instead of after it, lose the evolution term.
    moved = [(4, "cart", T0 + 4 * DAY) if b == (4, "cart", T0 + 9 * DAY) else b for b in HISTORY]
    moved.sort(key=lambda b: b[2])
    assert _logit(moved, 1) == pytest.approx(_logit(HISTORY, 1) - math.log(3) + math.log(1), abs=1e-9)
    # Funnel: a group ending in an order (satiated) scores below one ending in a cart (abandoned).
    ordered = [(1, "order", T0 + 5 * DAY) if b == (1, "cart", T0 + 5 * DAY) else b for b in HISTORY]
    diff = _logit(HISTORY, 1) - _logit(ordered, 1)
    # W grows by 1 (order weight 3 vs cart 2) and I too, F falls from 1.2 to -0.6.
    assert diff == pytest.approx(1.8 - (math.log(5) - math.log(4)) - (math.log(4) - math.log(3)), abs=1e-9)


def test_only_behaviors_before_the_request_count(small):
    hist = {int(h["user_id"]): h for h in small.histories}
    for e in small.test[::11] + small.train[::37]:
        h = hist[int(e["user_id"])]
        t_req = int(e["request_timestamp"])
        cut = h["hist_timestamp"] < t_req
        p_cut = v2.sigmoid(v2.true_click_logit(
            small.world, h["hist_item_id"][cut], h["hist_behavior_type"][cut], h["hist_timestamp"][cut],
            h["hist_amount"][cut], [e["item_id"]], [t_req], small.config.truth))
        assert float(p_cut[0]) == pytest.approx(float(e["true_prob"]), rel=1e-6)
    # A future negative on the target's group, at the request's very second, changes nothing.
    future = sorted(HISTORY + [(1, "negative", T)], key=lambda b: b[2])
    assert _logit(future, 1) == _logit(HISTORY, 1)


# ---------------------------------------------------------------------------------------------
# Generated data
# ---------------------------------------------------------------------------------------------

def test_same_seed_same_data_different_seed_different_data(small):
    again = synthetic.generate(synthetic.preset("small"))
    other = synthetic.generate(synthetic.preset("small", seed=1))
    for name in small.items:
        np.testing.assert_array_equal(small.items[name], again.items[name])
    for h, h2 in zip(small.histories, again.histories):
        for name in h:
            np.testing.assert_array_equal(h[name], h2[name])
    for split in ("train", "test"):
        assert getattr(small, split) == getattr(again, split)
    assert not np.array_equal(small.items["embedding"], other.items["embedding"])
    assert [e["label"] for e in small.test] != [e["label"] for e in other.test]


def test_records_match_the_spec_and_the_time_split(small):
    spec, config = small.spec, small.config
    assert spec.max_history_length == config.max_history_length
    for h in small.histories:
        assert list(h) == [f.name for f in spec.history_record_features()]
        n = len(h["hist_item_id"])
        assert config.min_history_length <= n <= config.max_history_length
        assert np.all(np.diff(h["hist_timestamp"]) >= 0)
        for f in spec.history_record_features():
            assert np.asarray(h[f.name]).dtype == f.np_dtype, f.name
        is_order = h["hist_behavior_type"] == TYPE["order"]
        assert np.all(h["hist_amount"][is_order] > 0) and np.all(h["hist_amount"][~is_order] == 0)
    fields = [f.name for f in spec.example_record_features(with_true_prob=True)]
    assert len(small.train) == config.n_users * config.train_examples_per_user
    train_max, test_min = {}, {}
    for split, out, fn in (("train", train_max, max), ("test", test_min, min)):
        for e in getattr(small, split):
            assert list(e) == fields and 0 < e["true_prob"] < 1 and 0 <= e["item_id"] < config.n_items
            u = int(e["user_id"])
            out[u] = fn(out.get(u, e["request_timestamp"]), e["request_timestamp"])
    assert all(train_max[u] < test_min[u] for u in train_max)
    assert 0.15 < np.mean([e["label"] for e in small.test]) < 0.5


def test_the_hierarchy_and_the_misalignment(small):
    items, config, world = small.items, small.config, small.world
    assert np.array_equal(items["category"], world.category_of_topic[items["content_topic"]])
    misaligned = items["topic"] != items["content_topic"]
    assert misaligned.mean() == pytest.approx(config.misaligned_fraction, abs=0.04)
    # A misaligned item's audience lives in another category.
    cat = world.category_of_topic
    assert np.all(cat[items["topic"][misaligned]] != cat[items["content_topic"][misaligned]])
    # Successors lie in other categories.
    assert np.all(cat[world.successors] != cat[:, None])
    # K-means at the data-driven k (no truth read) recovers the content topics, and at the number of
    # categories it recovers the categories: the vectors carry both levels.
    from tfrec.grouping import choose_k, kmeans
    emb = items["embedding"]
    chosen = choose_k(emb, seed=0)
    topics = kmeans(emb, chosen.k, seed=0).assignments
    assert _purity(topics, items["content_topic"]) > 0.95
    cats = kmeans(emb, config.n_categories, seed=0).assignments
    assert _purity(cats, items["category"]) > 0.95
    # The audience topic is what the vectors cannot show: purity against it is capped by the
    # misaligned share.
    assert _purity(topics, items["topic"]) < 1.0 - config.misaligned_fraction / 2


def test_semantic_id_level_one_follows_the_categories(small):
    from tfrec.grouping.rqvae import RQVAEConfig, fit_semantic_ids
    cfg = RQVAEConfig(levels=2, codebook_size=8, latent_dim=8, hidden=(32,), epochs=30, batch_size=64, seed=1)
    codes = fit_semantic_ids(small.items["embedding"], cfg).codes
    assert _purity(codes[:, 0], small.items["category"]) > 0.9
    # The two-level prefix narrows the category down towards the topic.
    prefix = codes[:, 0] * 1000 + codes[:, 1]
    assert _purity(prefix, small.items["content_topic"]) > _purity(codes[:, 0], small.items["content_topic"])


def test_sessions_chains_and_funnels_are_in_the_histories(small):
    topic = small.items["topic"]
    cat = small.world.category_of_topic
    same_topic_in_session, gaps_short, funnel_up, funnel_pairs = [], [], 0, 0
    for h in small.histories:
        ts, tp, bt = h["hist_timestamp"], topic[h["hist_item_id"]], h["hist_behavior_type"]
        short = np.diff(ts) <= 1800
        gaps_short.append(short.mean())
        same_topic_in_session.append((cat[tp[1:]] == cat[tp[:-1]])[short].mean())
        ok = short & (bt[1:] != TYPE["negative"]) & (bt[:-1] != TYPE["negative"])
        funnel_up += int((bt[1:] >= bt[:-1])[ok].sum())
        funnel_pairs += int(ok.sum())
    assert np.mean(gaps_short) > 0.7  # most behaviors sit in sessions
    assert np.mean(same_topic_in_session) > 0.9  # a session stays in one category
    assert funnel_up / funnel_pairs > 0.95  # types run up the funnel inside a session
    # A user's preferred topics (their phases, in time order) walk the topic chain.
    rng = np.random.default_rng(0)
    pred = small.world.predecessor
    chains = [v2._preferred_chain(small.config, rng, small.world) for _ in range(300)]
    steps = np.concatenate([pred[c[:-1], c[1:]] for c in chains])
    chance = small.world.successors.shape[1] / small.config.n_topics
    assert steps.mean() > 0.5 > 3 * chance


def test_late_negatives_close_their_topic_for_good():
    # Generate with every early phase closed by a late negative and check, per user, that every
    # topic whose latest behavior is a negative sits in its own phase's past: after a late
    # negative, nothing of that topic follows (no revisit, no sibling spill).
    cfg = synthetic.preset("small", n_users=60, late_negative_prob=1.0, negative_prob=0.0)
    data = synthetic.generate(cfg)
    closed = 0
    for h in data.histories:
        tp, bt = data.items["topic"][h["hist_item_id"]], h["hist_behavior_type"]
        for j in np.flatnonzero(bt == TYPE["negative"]):
            later = tp[j + 1:] == tp[j]
            assert not later.any(), (int(h["user_id"]), int(tp[j]))
            closed += 1
    assert closed >= 60  # at least one closed topic per user


def test_preferred_targets_come_from_begun_phases(small):
    # The "own" kind draws only topics whose phase has begun by the request.
    rng = np.random.default_rng(0)
    h = small.histories[0]
    # The world is the generator's first draw: the same seed rebuilds it and its item sampler.
    world, items, sampler = v2.make_world(small.config, np.random.default_rng(small.config.seed))
    np.testing.assert_array_equal(items["embedding"], small.items["embedding"])
    preferred = np.array([1, 2, 3])
    phase_start = np.array([0.0, 0.5, 0.95])
    cfg = dataclasses.replace(small.config, target_mix=(0.0, 0.0, 0.0, 1.0, 0.0))
    t_req, target = v2._requests(cfg, rng, world, sampler, preferred, phase_start, h["hist_item_id"],
                                 h["hist_timestamp"], 0.7, 0.9, 200)
    frac = (t_req - cfg.start_timestamp) / (cfg.time_span_days * DAY)
    topic = world.topic[target]
    assert set(topic.tolist()) <= {1, 2}  # phase 3 starts at 0.95, after every request
    assert np.all(frac < 0.9) and np.all(frac >= 0.7)


def test_every_planted_term_is_needed(small_report):
    # The oracle-ablation drop is positive for every term (the target on medium / long is
    # >= 0.01 AUC; small is noisier, so the test asks for a clear positive drop).
    for term in v2.TERMS:
        assert small_report["ablation"][term]["drop"] > 0.005, (term, small_report["ablation"][term])


def test_no_shortcut_reaches_the_oracle(small_report):
    for name in report_lib.SHORTCUTS:
        assert small_report["ceilings"][name]["gap"] > 0.02, (name, small_report["ceilings"][name])
    assert 0.8 < small_report["oracle"]["auc"] < 0.97


def test_shortcut_views_read_what_they_claim(small):
    h = small.histories[5]
    ts = h["hist_timestamp"]
    t_req = np.array([ts[-1] + 1, ts[len(ts) // 2]])
    target = np.array([3, 40])
    rng = np.random.default_rng(0)
    k = np.searchsorted(ts, t_req)
    (last50,) = report_lib._views("last50", small, h, target, t_req, rng, 1)
    assert [int(v.sum()) for v in last50["visible"]] == [50, 50]
    assert np.all(np.flatnonzero(last50["visible"][1]) == np.arange(k[1] - 50, k[1]))
    (hard,) = report_lib._views("sim_hard50", small, h, target, t_req, rng, 1)
    category = small.items["category"]
    for row, t in enumerate(target):
        same = np.flatnonzero((category[h["hist_item_id"]] == category[t]) & (np.arange(len(ts)) < k[row]))
        assert np.array_equal(np.flatnonzero(hard["visible"][row]), same[-50:])
    (similar,) = report_lib._views("similar50", small, h, target, t_req, rng, 1)
    emb = small.items["embedding"] / np.linalg.norm(small.items["embedding"], axis=1, keepdims=True)
    for row in range(2):
        visible = similar["visible"][row]
        assert visible.sum() == min(50, k[row]) and not visible[k[row]:].any()  # never the future
        sim = emb[h["hist_item_id"][: k[row]]] @ emb[target[row]]
        assert sim[visible[: k[row]]].min() >= np.sort(sim)[-50] - 1e-6
    (unordered,) = report_lib._views("unordered", small, h, target, t_req, rng, 1)
    # The past is a permutation of itself (items, types and amounts moved together); the future stays.
    behaviors = list(zip(h["hist_item_id"], h["hist_behavior_type"], h["hist_amount"].astype(np.float64)))
    for row in range(2):
        shuffled = list(zip(unordered["hist_item"][row], unordered["hist_behavior_type"][row],
                            unordered["hist_amount"][row]))
        assert sorted(shuffled[: k[row]]) == sorted(behaviors[: k[row]])
        assert shuffled[k[row]:] == behaviors[k[row]:]
    assert unordered["hist_item"][1][: k[1]].tolist() != h["hist_item_id"][: k[1]].tolist()


def test_report_refuses_v1_data():
    data = synthetic.generate(synthetic.preset("small", "v1", n_users=5))
    with pytest.raises(ValueError, match="v2"):
        report_lib.report(data)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="target_mix"):
        v2.SyntheticConfig(target_mix=(0.5, 0.5, 0.5, 0.0, 0.0))
    with pytest.raises(ValueError, match="misaligned_fraction"):
        v2.SyntheticConfig(misaligned_fraction=1.5)
    with pytest.raises(ValueError, match="n_categories"):
        v2.SyntheticConfig(n_categories=1)
    with pytest.raises(ValueError, match="version"):
        synthetic.preset("small", "v3")
    with pytest.raises(ValueError, match="preset"):
        synthetic.preset("huge")


def test_v1_stays_reproducible():
    # The default switched to v2; v1 is still generated, unchanged, by its own module.
    cfg = synthetic.preset("small", "v1", n_users=20)
    assert synthetic.version_of(cfg) == "v1"
    data = synthetic.generate(cfg)
    again = synthetic.v1.generate(dataclasses.replace(cfg))
    assert data.test == again.test and data.world is None
