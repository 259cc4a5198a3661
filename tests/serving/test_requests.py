"""Client-side request building: history -> padded user_tower inputs, cut like the training pipeline."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.data.dataset import cut_and_pad
from tfrec.serving.requests import from_tensor_proto, predict_request, stack_features, user_features

HISTORY = {"item_id": [4, 5, 6, 7, 8], "behavior_type": [0, 1, 4, 2, 0], "timestamp": [10, 20, 30, 40, 50],
           "duration": [1.0, 2.0, 3.0, 4.0, 5.0], "amount": [0.0, 0.0, 9.5, 0.0, 0.0]}


def test_cut_at_request_time_and_keep_most_recent():
    f = user_features(3, HISTORY, request_timestamp=40, max_history_length=2, user_segment=1)
    # behaviors strictly before t=40 are 10, 20, 30; the two most recent are kept, oldest first
    np.testing.assert_array_equal(f["hist_item_id"], [[5, 6]])
    np.testing.assert_array_equal(f["hist_timestamp"], [[20, 30]])
    np.testing.assert_allclose(f["hist_amount"], [[0.0, 9.5]])
    assert f["hist_length"].tolist() == [2] and f["hist_length"].dtype == np.int32
    assert (f["user_id"].tolist(), f["user_segment"].tolist(), f["request_timestamp"].tolist()) == ([3], [1], [40])
    assert f["hist_duration"].dtype == np.float32 and f["hist_item_id"].dtype == np.int64


def test_matches_the_training_pipeline_cut():
    flat = {f"hist_{k}": tf.constant(np.append(np.asarray(v), 0)) for k, v in HISTORY.items()}
    flat = {k: tf.cast(v, tf.float32 if k in ("hist_duration", "hist_amount") else tf.int64) for k, v in flat.items()}
    ref = cut_and_pad(flat, tf.constant([0], tf.int64), tf.constant([5], tf.int64), tf.constant([45], tf.int64), 3)
    mine = user_features(0, HISTORY, request_timestamp=45, max_history_length=3)
    for key in ("hist_item_id", "hist_timestamp", "hist_amount", "hist_length"):
        np.testing.assert_array_equal(mine[key], ref[key].numpy(), err_msg=key)


def test_defaults_short_names_and_cold_start():
    f = user_features(1, {"hist_item_id": [1, 2], "hist_behavior_type": [0, 0], "hist_timestamp": [5, 6]})
    assert f["request_timestamp"].tolist() == [7] and f["hist_length"].tolist() == [2]
    np.testing.assert_array_equal(f["hist_amount"], [[0.0, 0.0]])  # optional fields default to 0
    cold = user_features(2, {}, request_timestamp=100)
    assert cold["hist_item_id"].shape == (1, 0) and cold["hist_length"].tolist() == [0]
    batch = stack_features([f, cold])
    assert batch["hist_item_id"].shape == (2, 2) and batch["hist_length"].tolist() == [2, 0]
    np.testing.assert_array_equal(batch["hist_item_id"][1], [0, 0])  # right-padded


@pytest.mark.parametrize("history, field", [
    ({"item_id": [1, 2], "behavior_type": [0], "timestamp": [1, 2]}, "behavior_type"),
    ({"item_id": [1, 2], "timestamp": [1, 2]}, "behavior_type"),
    ({"item_id": [1, 2], "behavior_type": [0, 0], "timestamp": [3, 2]}, "sorted"),
])
def test_bad_history_names_the_field(history, field):
    with pytest.raises(ValueError, match=field):
        user_features(1, history)


def test_predict_request_round_trip():
    request = predict_request("dmgin", {"x": np.arange(6, dtype=np.int64).reshape(2, 3)}, "score", version=4)
    assert (request.model_spec.name, request.model_spec.signature_name, request.model_spec.version.value) == \
        ("dmgin", "score", 4)
    np.testing.assert_array_equal(from_tensor_proto(request.inputs["x"]), [[0, 1, 2], [3, 4, 5]])
    labelled = predict_request("dmgin", {}, version_label="stable")
    assert labelled.model_spec.version_label == "stable" and not labelled.model_spec.HasField("version")
