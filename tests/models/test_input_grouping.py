"""DMGIN groups in the input pipeline (issue 16): the tensors joined from ``RequestStates`` (computed once
per request) and those mapped by ``prepare_training_data`` equal the in-graph grouping of the raw
behaviors (integer tensors bit-identical, float statistics to float32 rounding); the model gives the same outputs on both; a request that was not computed fails
with a message naming it."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfrec.configs import DMGINConfig
from tfrec.data.dataset import load_user_histories, make_dataset
from tfrec.data.request_states import RequestStates
from tfrec.data.schema import FeatureDef
from tfrec.data.spec import FeatureSpec
from tfrec.data.tfrecord import write_examples, write_user_histories
from tfrec.models import DMGIN

SPEC = FeatureSpec(n_items=60, n_user_segments=3, max_history_length=40,
                   behavior_features=(FeatureDef("location", "categorical", vocab_size=5),))
NUM_GROUPS = 8
TABLE = np.random.default_rng(3).integers(0, NUM_GROUPS, SPEC.n_items)  # group 0 (unknown) included
CONFIG = DMGINConfig(embedding_dim=8, top_k_groups=4, max_per_group=3, num_heads=2, hstu_layers=1, hstu_heads=2,
                     short_term_length=5, attention_units=(8,), mlp_units=(8,))
BATCH = 7


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """12 users (one without behaviors), histories of 0..60 behaviors with tied timestamps, requests at
    random times (some repeated with other items: one state per (user, request time)), one cold-start user."""
    rng = np.random.default_rng(0)
    out = tmp_path_factory.mktemp("grouping")
    users, requests = [], []
    for u in range(12):
        n = 0 if u == 0 else int(rng.integers(1, 61))
        ts = np.sort(rng.integers(0, 200, n)) * 10  # ties on purpose
        users.append(dict(user_id=u, user_segment=int(rng.integers(0, 3)), hist_item_id=rng.integers(0, 60, n),
                          hist_behavior_type=rng.integers(0, 6, n), hist_timestamp=ts,
                          hist_duration=rng.gamma(2.0, 5.0, n), hist_amount=np.where(rng.random(n) < 0.3, 9.5, 0.0),
                          hist_location=rng.integers(0, 5, n)))
        for t in rng.integers(0, 2100, 6):
            requests += [(u, int(t))] * int(rng.integers(1, 3))
    requests.append((99, 1000))
    write_user_histories(out / "hist.tfrec", SPEC, users)
    write_examples(out / "ex.tfrec", SPEC, [
        dict(user_id=u, item_id=int(rng.integers(0, 60)), request_timestamp=t, label=i % 2)
        for i, (u, t) in enumerate(requests)])
    return out, requests


def _datasets(data, spec=SPEC):
    out, _ = data
    history = load_user_histories(out / "hist.tfrec", SPEC)
    return make_dataset(out / "ex.tfrec", spec, history=history, batch_size=BATCH)


@pytest.fixture(scope="module")
def model(data):
    tf.keras.utils.set_random_seed(0)
    m = DMGIN(SPEC, CONFIG, num_groups=NUM_GROUPS, item_to_group=TABLE)
    m(next(iter(_datasets(data)))[0])
    return m


def _assert_same(pipeline_x, raw_x, model):
    expected = model.group_history(raw_x)  # in-graph, on the model's table weight
    assert set(model.grouped_keys()) == set(expected)
    for key, value in expected.items():
        if value.dtype.is_floating:  # float sums: the segment reduction's order follows its thread pool
            np.testing.assert_allclose(pipeline_x[key].numpy(), value.numpy(), rtol=1e-6, atol=1e-9, err_msg=key)
        else:  # ids, masks, timestamps, positions' gathers: bit-identical
            np.testing.assert_array_equal(pipeline_x[key].numpy(), value.numpy(), err_msg=key)
    np.testing.assert_allclose(model(pipeline_x).numpy(), model(raw_x).numpy(), atol=1e-6)


def test_precomputed_states_equal_the_in_graph_grouping(data, model):
    fn, history_length = model.request_stage()
    assert history_length == CONFIG.short_term_length
    states = RequestStates.compute(_datasets(data), fn)
    assert len(states) == len(set(data[1]))  # one row per distinct (user, request time)
    assert states.values["grouped_item_id"].shape == (len(states), 4, 3)
    short = dataclasses.replace(SPEC, max_history_length=history_length)
    joined = states.join_dataset(_datasets(data, short))
    n = 0
    for (pipeline_x, _), (raw_x, _) in zip(joined, _datasets(data)):
        assert pipeline_x["hist_item_id"].shape[1] <= history_length  # the step reads S, not L, raw behaviors
        _assert_same(pipeline_x, raw_x, model)
        n += 1
    assert n == -(-len(data[1]) // BATCH)
    # the planted ties and the unknown group 0 are present, so the comparison covers them
    assert (states.values["grouped_ids"] == 0).any() and states.values["grouped_mask"].any()


def test_prepare_training_data_maps_the_same_tensors(data, model):
    for (pipeline_x, _), (raw_x, _) in zip(model.prepare_training_data(_datasets(data)), _datasets(data)):
        assert pipeline_x["hist_item_id"].shape[1] == CONFIG.short_term_length
        _assert_same(pipeline_x, raw_x, model)


def test_already_joined_data_and_in_graph_grouping_are_left_alone(data, model):
    fn, _ = model.request_stage()
    joined = RequestStates.compute(_datasets(data), fn).join_dataset(_datasets(data))
    assert model.prepare_training_data(joined) is joined
    graph = DMGIN(SPEC, dataclasses.replace(CONFIG, input_grouping=False), num_groups=NUM_GROUPS, item_to_group=TABLE)
    raw = _datasets(data)
    assert graph.request_stage() is None and graph.prepare_training_data(raw) is raw


def test_a_request_not_computed_names_itself(data, model):
    fn, _ = model.request_stage()
    states = RequestStates.compute(_datasets(data).take(1), fn)
    with pytest.raises(tf.errors.InvalidArgumentError, match="no precomputed request state for user_id"):
        for _ in states.join_dataset(_datasets(data)):
            pass
