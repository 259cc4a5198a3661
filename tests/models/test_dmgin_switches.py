"""DMGIN's ablation switches (issue 15): each changes the graph as documented, DGIN groups by item id,
``top_k_groups: 0`` is sized from the data with its coverage reported, and switch combinations export."""
import dataclasses
import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfrec.configs import DMGINConfig
from tfrec.export import export_saved_model
from tfrec.export.saved_model import non_stock_ops
from tfrec.grouping import GroupTable
from tfrec.grouping.coverage import choose_top_k, coverage_at, target_group_ranks
from tfrec.models import DMGIN
from tfrec.testing import assert_saved_model_matches, random_features
from tfrec.training import build_model

from tests.models.test_models import DMGIN_CONFIG, NUM_GROUPS, SPEC, TABLE

FEATURES = random_features(SPEC, 3, 16, seed=0)


def _model(**changes):
    tf.keras.utils.set_random_seed(0)
    model = DMGIN(SPEC, dataclasses.replace(DMGIN_CONFIG, **changes), num_groups=NUM_GROUPS, item_to_group=TABLE)
    model(FEATURES)
    return model


def _weight_names(model):
    return {w.name.split("/")[1] for w in model.weights}


@pytest.fixture(scope="module")
def full():
    return _model()


def test_statistics_and_evolution_switches_remove_their_branches(full):
    assert {"group_statistics", "intra_group_attention", "behavior_embedding"} <= _weight_names(full)
    no_stats, no_evo = _model(statistics=False), _model(evolution=False)
    assert "group_statistics" not in _weight_names(no_stats)
    assert not {"intra_group_attention", "behavior_embedding"} & _weight_names(no_evo)
    # eq. 5's projection loses exactly the inputs of the removed branch (d = 8 rows each)
    rows = {m: m.group_repr.project.kernel.shape[0] for m in (full, no_stats, no_evo)}
    assert rows[full] - rows[no_stats] == 8 and rows[full] - rows[no_evo] == 8


def test_hstu_layers_zero_is_dmgin_simple_and_each_layer_adds_one_block(full):
    counts = [_model(hstu_layers=n).count_params() for n in (0, 1, 2, 3)]
    assert counts[-2] == full.count_params()
    per_layer = np.diff(counts)
    assert per_layer[0] > 0 and (per_layer == per_layer[0]).all()
    simple = _model(hstu_layers=0)
    assert simple.hstu is None and "hstu" not in _weight_names(simple)
    # DMGIN-simple: the group states are the top-k group vectors themselves (masked)
    state = simple.encode_user(FEATURES)
    hist = simple.padded_history(FEATURES)
    groups = simple.grouping({"group_id": simple.item_group(hist["hist_item_id"]),
                              "timestamp": hist["hist_timestamp"], "length": hist["hist_length"]})
    kept = groups["group_mask"].numpy()
    assert state["group_mask"].numpy().sum() == kept.sum() > 0
    np.testing.assert_array_equal(np.abs(state["group_states"].numpy()).sum(-1) > 0, state["group_mask"].numpy() > 0)


def test_match_prior_off_is_eq_10_exactly(full):
    plain = _model(match_prior=False)
    assert "group_ids" not in plain.encode_user(FEATURES) and "group_ids" in full.encode_user(FEATURES)
    assert not hasattr(plain.group_attention, "match_bias")
    # the prior's model with b = 0 and otherwise the same weights scores exactly as eq. 10
    source = [w for w in full.weights if "match_bias" not in w.name]
    assert len(source) == len(plain.weights)
    for w, v in zip(plain.weights, source):  # created in the same order (Dense names are auto-numbered)
        w.assign(v)
    full.group_attention.match_bias.assign(0.0)
    candidates = tf.constant([[0, 1, 2, 7]] * 3, tf.int64)
    np.testing.assert_allclose(plain.score(plain.encode_user(FEATURES), candidates).numpy(),
                               full.score(full.encode_user(FEATURES), candidates).numpy(), atol=1e-6)
    full.group_attention.match_bias.assign(2.0)
    assert not np.allclose(plain.score(plain.encode_user(FEATURES), candidates).numpy(),
                           full.score(full.encode_user(FEATURES), candidates).numpy(), atol=1e-4)


def test_short_term_branch_off():
    model = _model(short_term_length=0)
    state = model.encode_user(FEATURES)
    assert "recent_behaviors" not in state and model.recent_attention is None
    assert model(FEATURES).shape == (3,)


def test_dgin_groups_by_item_id_without_a_group_table():
    model = build_model("dmgin", SPEC, {**dataclasses.asdict(DMGIN_CONFIG), "group_key": "item_id",
                                        "hstu_layers": 0, "top_k_groups": 16})
    assert model.num_groups == SPEC.n_items + 1
    np.testing.assert_array_equal(model.item_group(tf.constant([0, 5, 39])).numpy(), [1, 6, 40])
    features = dict(FEATURES)
    features["hist_item_id"] = np.tile([3, 7, 3, 11, 7, 3] + [0] * 10, (3, 1))
    features["hist_length"] = np.array([6, 3, 0], np.int32)
    state = model.encode_user(features)
    # one group per distinct item among the valid behaviors (K-means would merge 3, 7 and 11: all group 4)
    np.testing.assert_array_equal(state["group_mask"].numpy().sum(-1), [3, 2, 0])
    with pytest.raises(ValueError, match="needs the item->group table"):
        build_model("dmgin", SPEC, {**dataclasses.asdict(DMGIN_CONFIG), "group_key": "cluster"})


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="group_key"):
        DMGINConfig(group_key="brand")
    with pytest.raises(ValueError, match="hstu_layers"):
        DMGINConfig(hstu_layers=-1)
    with pytest.raises(ValueError, match="top_k_coverage"):
        DMGINConfig(top_k_coverage=0.0)
    with pytest.raises(ValueError, match="top_k_groups=0 means 'sized from the training data'"):
        DMGIN(SPEC, DMGINConfig(), num_groups=NUM_GROUPS, item_to_group=TABLE)


def test_target_group_ranks_follow_behavior_groupings_order():
    """The rank of the target's group = its slot among BehaviorGrouping's groups (the order DMGIN keeps
    them in), with timestamps in 0..3 so that ties between groups are everywhere."""
    from tfrec.layers.behavior_grouping import BehaviorGrouping

    rng = np.random.default_rng(0)
    b, length = 128, 10
    features = {"item_id": rng.integers(0, SPEC.n_items, b), "hist_item_id": rng.integers(0, SPEC.n_items, (b, length)),
                "hist_timestamp": np.sort(rng.integers(0, 4, (b, length)), 1), "hist_length": rng.integers(0, length + 1, b)}
    ranks, counts = target_group_ranks([features], TABLE)
    grouped = BehaviorGrouping(NUM_GROUPS, NUM_GROUPS, 3)({"group_id": TABLE[features["hist_item_id"]],
                                                             "timestamp": features["hist_timestamp"],
                                                             "length": features["hist_length"]})
    ids, kept = grouped["group_id"].numpy(), grouped["group_mask"].numpy()
    expected = [next((s for s in range(NUM_GROUPS) if kept[i, s] and ids[i, s] == TABLE[features["item_id"][i]]), -1)
                for i in range(b)]
    np.testing.assert_array_equal(ranks, expected)
    np.testing.assert_array_equal(counts, kept.sum(1))
    assert (ranks == -1).any() and ranks.max() >= 2


def test_choose_top_k_is_the_smallest_k_reaching_the_coverage():
    ranks = np.array([0, 0, 1, 2, 5, -1, 3, 0, 9, -1])
    counts = np.full(10, 10)
    choice = choose_top_k(ranks, counts, target=0.75, max_k=128, min_k=1)
    present = ranks[ranks >= 0]  # 8 examples have the group; 6 of them (75%) have rank <= 3
    assert choice.k == 4 and np.mean(present < 4) >= 0.75 > np.mean(present < 3)
    assert choice.coverage == 0.6 and choice.present == 0.8
    assert choose_top_k(ranks, counts, target=1.0, max_k=4, min_k=1).k == 4  # capped
    assert coverage_at(ranks, counts, 1).coverage == 0.3


def test_top_k_groups_zero_is_sized_from_the_training_data(tmp_path):
    features = random_features(SPEC, 64, 16, seed=3)
    labels = np.zeros(64, np.float32)
    data = tf.data.Dataset.from_tensor_slices((features, labels)).batch(16)
    groups = GroupTable(table=TABLE.astype(np.int32), centroids=np.zeros((NUM_GROUPS - 1, 2), np.float32),
                        n_groups=NUM_GROUPS, report={})
    config = {**dataclasses.asdict(DMGIN_CONFIG), "top_k_groups": 0, "top_k_coverage": 0.5}
    model = build_model("dmgin", SPEC, config, groups=groups, train_data=data)
    ranks, counts = target_group_ranks([{k: np.asarray(v) for k, v in features.items()}], TABLE)
    expected = choose_top_k(ranks, counts, 0.5, DMGIN_CONFIG.top_k_max)
    assert model.config.top_k_groups == expected.k
    assert model.data_report["top_k_groups"]["coverage"] == pytest.approx(expected.coverage)
    assert "top_k_groups=" in model.data_report["top_k_line"]
    # a k given by hand is kept, and its coverage reported
    model = build_model("dmgin", SPEC, {**config, "top_k_groups": 2}, groups=groups, train_data=data)
    assert model.config.top_k_groups == 2 and model.data_report["top_k_groups"]["target"] is None


# (match_prior, statistics, evolution, hstu_layers > 0, short-term on, group_key item_id): every pair of
# switch values appears in some row (checked below), so every pairwise interaction exports. The
# export code has no per-switch branch (the state is whatever encode_user returns); all 64 rows would
# cost ~2.5 minutes of the suite for no extra code path.
COMBINATIONS = [(0, 0, 0, 0, 0, 0), (0, 1, 1, 1, 0, 1), (1, 0, 1, 0, 1, 1), (1, 1, 0, 1, 1, 0),
                (1, 1, 1, 0, 0, 0), (0, 0, 0, 1, 1, 1)]


def test_the_export_combinations_cover_every_pair_of_switch_values():
    for i, j in itertools.combinations(range(6), 2):
        assert {(row[i], row[j]) for row in COMBINATIONS} == {(0, 0), (0, 1), (1, 0), (1, 1)}


@pytest.mark.parametrize("row", COMBINATIONS, ids=lambda r: "".join(map(str, r)))
def test_switch_combinations_export_with_stock_ops_and_parity(row, tmp_path):
    match, stats, evo, hstu, short, item_key = map(bool, row)
    model = _model(match_prior=match, statistics=stats, evolution=evo, hstu_layers=2 if hstu else 0,
                   short_term_length=5 if short else 0, group_key="item_id" if item_key else "cluster")
    version = export_saved_model(model, SPEC, tmp_path, "dmgin")
    assert non_stock_ops(version) == []
    assert_saved_model_matches(model, SPEC, version, FEATURES, np.array([[0, 1, 2, 7]] * 3))
