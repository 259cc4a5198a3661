"""BehaviorEmbedding: [E_time(bucket(age)); E_type(type)] with exact bucket boundaries."""
import numpy as np
import pytest

from tfrec.layers.behavior_embedding import BehaviorEmbedding
from tfrec.testing import assert_layer_config_roundtrip

DAY = 86400.0


def _layer():
    layer = BehaviorEmbedding(n_behavior_types=3, dim=2, time_bucket_days=(1.0, 7.0))
    layer({"behavior_type": np.zeros([1], np.int64), "age_seconds": np.zeros([1], np.float32)})  # build
    layer.time_embedding.set_weights([np.array([[0, 0], [1, 1], [2, 2], [-9, -9]], np.float32)])
    layer.type_embedding.set_weights([np.array([[10, 10], [11, 11], [12, 12], [-1, -1]], np.float32)])
    return layer


def test_buckets_and_types():
    ages = np.array([[-5, 0, DAY - 1, DAY, 6 * DAY, 7 * DAY, 400 * DAY]], np.float32)
    types = np.array([[0, 1, 2, 0, 1, 2, 5]], np.int64)  # 5 is unknown -> OOV row
    out = _layer()({"behavior_type": types, "age_seconds": ages}).numpy()
    assert out.shape == (1, 7, 4)
    # buckets: (-inf, 1 day) -> 0, [1, 7) days -> 1, [7 days, inf) -> 2 (a boundary opens the next bucket)
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(out[0, :, 2], [10, 11, 12, 10, 11, 12, -1])


def test_validation():
    with pytest.raises(ValueError, match="increasing"):
        BehaviorEmbedding(n_behavior_types=3, dim=2, time_bucket_days=(7.0, 1.0))


def test_config_roundtrip():
    inputs = {"behavior_type": np.array([[0, 2]], np.int64), "age_seconds": np.array([[10.0, 9 * DAY]], np.float32)}
    assert_layer_config_roundtrip(_layer(), inputs)
