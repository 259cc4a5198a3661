"""TopKGroups: exact selection by max timestamp, ordered oldest -> newest, left padded (DMGIN eq. 6)."""
import numpy as np
import pytest

from tfrec.layers.top_k_groups import TopKGroups
from tfrec.testing import assert_layer_config_roundtrip

# 4 group slots; user 0 has three valid groups (t = 50, 10, 30), user 1 one (slot 2, t = 7);
# masked slots carry large timestamps that must not be selected.
INPUTS = {
    "max_timestamp": np.array([[50, 10, 30, 999], [100, 200, 7, 300]], np.int64),
    "mask": np.array([[True, True, True, False], [False, False, True, False]]),
    "values": {"id": np.array([[0, 1, 2, 3], [10, 11, 12, 13]], np.int64),
               "vec": np.arange(16, dtype=np.float32).reshape(2, 4, 2)},
}


def test_selection_and_order_golden():
    out = {k: v.numpy() for k, v in TopKGroups(k=3)(INPUTS).items()}
    np.testing.assert_array_equal(out["mask"], [[True, True, True], [False, False, True]])
    np.testing.assert_array_equal(out["max_timestamp"], [[10, 30, 50], [-1, -1, 7]])
    np.testing.assert_array_equal(out["id"][0], [1, 2, 0])  # oldest -> newest
    assert out["id"][1, 2] == 12  # the newest group always sits at position k - 1
    np.testing.assert_array_equal(out["vec"][0], INPUTS["values"]["vec"][0][[1, 2, 0]])
    np.testing.assert_array_equal(out["vec"][1, 2], INPUTS["values"]["vec"][1, 2])


def test_k_smaller_than_valid_groups_keeps_the_newest():
    out = TopKGroups(k=2)(INPUTS)
    np.testing.assert_array_equal(out["id"].numpy()[0], [2, 0])
    np.testing.assert_array_equal(out["max_timestamp"].numpy(), [[30, 50], [-1, 7]])


def test_validation():
    with pytest.raises(ValueError, match="k"):
        TopKGroups(k=0)
    with pytest.raises(ValueError, match="at least k=5"):
        TopKGroups(k=5)(INPUTS)


def test_config_roundtrip():
    assert_layer_config_roundtrip(TopKGroups(k=3), INPUTS, expected_shapes={
        "id": (2, 3), "vec": (2, 3, 2), "max_timestamp": (2, 3), "mask": (2, 3)})
