"""RecentBehaviors: the S most recent valid behaviors, oldest -> newest, left padded."""
import numpy as np
import pytest

from tfrec.layers.recent_behaviors import RecentBehaviors
from tfrec.testing import assert_layer_config_roundtrip

INPUTS = {
    "length": np.array([0, 2, 5, 4], np.int32),
    "values": {
        "item": np.array([[9, 9, 9, 9, 9], [1, 2, 9, 9, 9], [1, 2, 3, 4, 5], [6, 7, 8, 9, 99]], np.int64),
        "vec": np.arange(40, dtype=np.float32).reshape(4, 5, 2) + 1,
    },
}


def test_golden():
    out = {k: v.numpy() for k, v in RecentBehaviors(size=3)(INPUTS).items()}
    np.testing.assert_array_equal(out["item"], [[0, 0, 0], [0, 1, 2], [3, 4, 5], [7, 8, 9]])
    np.testing.assert_array_equal(out["mask"], [[0, 0, 0], [0, 1, 1], [1, 1, 1], [1, 1, 1]])
    assert out["mask"].dtype == np.float32
    vec = INPUTS["values"]["vec"]
    np.testing.assert_array_equal(out["vec"][1], [[0, 0], vec[1, 0], vec[1, 1]])
    np.testing.assert_array_equal(out["vec"][3], vec[3, 1:4])


def test_size_larger_than_the_sequence():
    out = RecentBehaviors(size=7)({"length": np.array([5, 1], np.int32),
                                   "values": {"item": np.array([[1, 2, 3, 4, 5], [6, 0, 0, 0, 0]])}})
    np.testing.assert_array_equal(out["item"].numpy(), [[0, 0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 0, 0, 6]])


def test_validation():
    with pytest.raises(ValueError, match="size"):
        RecentBehaviors(size=0)


def test_config_roundtrip():
    assert_layer_config_roundtrip(RecentBehaviors(size=3), INPUTS)
