"""GroupStatistics: exact raw statistics of a hand-computed case (DMGIN eq. 1)."""
import numpy as np

from tfrec.layers.group_statistics import GroupStatistics
from tfrec.testing import assert_layer_config_roundtrip

DAY = 86400.0

# Two group slots (G = 2), four categories (weak, strong, payment, negative).
# User 0, behaviors 0..4: slot 0 = {0, 2, 3}, slot 1 = {1}, behavior 4 has slot G (ignored).
# User 1: only behavior 0 counts (slot 1); slot 0 is empty.
INPUTS = {
    "slot": np.array([[0, 1, 0, 0, 2], [1, 2, 2, 2, 2]], np.int32),
    "category": np.array([[0, 1, 2, 2, 3], [3, 3, 3, 3, 3]], np.int64),
    "duration": np.array([[10, 4, 2, 0, 100], [7, 9, 9, 9, 9]], np.float32),
    "amount": np.array([[0, 0, 5, 15, 99], [0, 1, 1, 1, 1]], np.float32),
    "age_seconds": np.array([[3 * DAY, DAY, 2 * DAY, 0.5 * DAY, 0], [4 * DAY, 0, 0, 0, 0]], np.float32),
}


def test_raw_statistics_golden():
    layer = GroupStatistics(max_groups=2, n_categories=4, dim=3)
    out = layer(INPUTS)
    # layout: log1p of [count per category (4), total, mean duration, max duration,
    #                   mean amount over amount > 0, days since the most recent behavior]
    expected = np.log1p(np.array([
        [[1, 0, 2, 0, 3, 4, 10, 10, 0.5],   # (10+2+0)/3 = 4; (5+15)/2 = 10; min age 0.5 day
         [0, 1, 0, 0, 1, 4, 4, 0, 1]],      # no payment -> mean amount 0
        [[0, 0, 0, 0, 0, 0, 0, 0, 0],       # empty group -> all zeros
         [0, 0, 0, 1, 1, 7, 7, 0, 4]],
    ], np.float32))
    np.testing.assert_allclose(out["raw"].numpy(), expected, rtol=1e-6, atol=1e-6)
    assert out["embedding"].shape == (2, 2, 3)
    # s_i = relu(W raw_i + b)
    kernel, bias = layer.project.get_weights()
    np.testing.assert_allclose(out["embedding"].numpy(), np.maximum(expected @ kernel + bias, 0), atol=1e-5)


def test_ignored_behaviors_do_not_change_the_statistics():
    layer = GroupStatistics(max_groups=2, n_categories=4, dim=3)
    raw = layer(INPUTS)["raw"].numpy()
    ignored = INPUTS["slot"] == 2
    perturbed = {k: v.copy() for k, v in INPUTS.items()}
    perturbed["category"][ignored] = 2
    perturbed["duration"][ignored] = 1e4
    perturbed["amount"][ignored] = 1e4
    perturbed["age_seconds"][ignored] = 0.0
    np.testing.assert_array_equal(layer(perturbed)["raw"].numpy(), raw)


def test_config_roundtrip():
    assert_layer_config_roundtrip(GroupStatistics(max_groups=2, n_categories=4, dim=3), INPUTS,
                                  expected_shapes={"raw": (2, 2, 9), "embedding": (2, 2, 3)})
