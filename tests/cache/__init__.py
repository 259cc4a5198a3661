"""Tests of tfrec.cache (user-state cache backends and codec), and their shared helpers."""
import time

import numpy as np


class FakeClock:
    """An injectable wall clock: SQLite TTL tests advance it instead of sleeping."""

    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def assert_states_equal(actual, expected):
    assert list(actual) == list(expected)
    for key, value in expected.items():
        value = np.asarray(value)
        assert actual[key].dtype == value.dtype, key
        assert actual[key].shape == value.shape, key
        np.testing.assert_array_equal(actual[key], value, err_msg=key)


def mixed_state(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "group_states": rng.normal(size=(4, 8)).astype(np.float32),
        "group_mask": np.array([1, 1, 0, 1], np.float32),
        "group_valid": np.array([True, False, True, True]),
        "group_ids": np.array([3, 17, -1, 250], np.int32),
        "user_embedding": rng.normal(size=8).astype(np.float64),
        "fingerprint": np.int64(-9_123_456_789),
        "half": rng.normal(size=(2, 3)).astype(np.float16),
        "empty": np.zeros((0, 5), np.float32),
    }
