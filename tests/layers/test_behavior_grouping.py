"""BehaviorGrouping: hand-built golden cases and a brute-force numpy reference."""
import numpy as np
import pytest

from tfrec.layers.behavior_grouping import BehaviorGrouping
from tfrec.testing import assert_layer_config_roundtrip, assert_nested_allclose


def _run(layer, groups, timestamps, lengths):
    out = layer({"group_id": np.asarray(groups, np.int64), "timestamp": np.asarray(timestamps, np.int64),
                 "length": np.asarray(lengths, np.int32)})
    return {k: v.numpy() for k, v in out.items()}


def reference_grouping(groups, timestamps, lengths, num_groups, max_groups, max_per_group):
    """Plain python: the groups with the most recent behavior (ties: lower id), m most recent each."""
    b, seq_len = np.shape(groups)
    g, m = max_groups, max_per_group
    out = {"positions": np.full((b, g, m), -1, np.int32), "group_id": np.zeros((b, g), np.int32),
           "group_mask": np.zeros((b, g), bool), "max_timestamp": np.full((b, g), -1, np.int64),
           "slot": np.full((b, seq_len), g, np.int32)}
    for u in range(b):
        members = {}
        for j in range(int(lengths[u])):
            members.setdefault(int(groups[u][j]), []).append(j)
        ranked = sorted(members, key=lambda grp: (-max(timestamps[u][j] for j in members[grp]), grp))[:g]
        for s, grp in enumerate(ranked):
            out["group_id"][u, s] = grp
            out["group_mask"][u, s] = True
            out["max_timestamp"][u, s] = max(timestamps[u][j] for j in members[grp])
            # most recent first; equal timestamps: the later position first
            recent = sorted(members[grp], key=lambda j: (-timestamps[u][j], -j))[:m]
            out["positions"][u, s, :len(recent)] = recent
            for j in members[grp]:
                out["slot"][u, j] = s
    out["behavior_mask"] = out["positions"] >= 0
    return out


# User 0: groups [1,2,1,3,2,1] at t = 10..60, length 6.
# User 1: length 2 (group 3 at t=5, reserved group 0 at t=7); the padding (groups 3, 2, 1 with
# later timestamps) must be ignored.
GROUPS = [[1, 2, 1, 3, 2, 1], [3, 0, 3, 2, 2, 1]]
TIMES = [[10, 20, 30, 40, 50, 60], [5, 7, 100, 200, 300, 400]]
LENGTHS = [6, 2]


def test_golden_two_users():
    out = _run(BehaviorGrouping(num_groups=4, max_groups=3, max_per_group=2), GROUPS, TIMES, LENGTHS)
    # user 0: group 1 last seen at 60 (pos 5), group 2 at 50 (pos 4), group 3 at 40 (pos 3).
    np.testing.assert_array_equal(out["group_id"], [[1, 2, 3], [0, 3, 0]])
    np.testing.assert_array_equal(out["group_mask"], [[True, True, True], [True, True, False]])
    np.testing.assert_array_equal(out["max_timestamp"], [[60, 50, 40], [7, 5, -1]])
    np.testing.assert_array_equal(out["positions"], [
        [[5, 2], [4, 1], [3, -1]],      # group 1 keeps its 2 most recent (pos 0 dropped)
        [[1, -1], [0, -1], [-1, -1]],   # group 0 (pos 1), group 3 (pos 0), empty slot
    ])
    np.testing.assert_array_equal(out["behavior_mask"], out["positions"] >= 0)
    np.testing.assert_array_equal(out["slot"], [[0, 1, 0, 2, 1, 0], [1, 0, 3, 3, 3, 3]])


def test_all_behaviors_of_a_group_when_m_is_large():
    out = _run(BehaviorGrouping(num_groups=4, max_groups=3, max_per_group=4), GROUPS[:1], TIMES[:1], [6])
    np.testing.assert_array_equal(out["positions"][0], [[5, 2, 0, -1], [4, 1, -1, -1], [3, -1, -1, -1]])


def test_max_groups_drops_the_oldest_groups():
    out = _run(BehaviorGrouping(num_groups=4, max_groups=2, max_per_group=2), GROUPS, TIMES, LENGTHS)
    np.testing.assert_array_equal(out["group_id"], [[1, 2], [0, 3]])
    np.testing.assert_array_equal(out["max_timestamp"], [[60, 50], [7, 5]])
    np.testing.assert_array_equal(out["positions"][0], [[5, 2], [4, 1]])
    # group 3 (pos 3) was dropped: its behavior gets slot G = 2.
    np.testing.assert_array_equal(out["slot"], [[0, 1, 0, 2, 1, 0], [1, 0, 2, 2, 2, 2]])


def test_ties():
    # Groups 2 and 1 share their max timestamp 5 -> lower id first. Inside group 3, two behaviors
    # at t=9 -> the later position first.
    out = _run(BehaviorGrouping(num_groups=4, max_groups=3, max_per_group=3),
               [[2, 1, 3, 3]], [[5, 5, 9, 9]], [4])
    np.testing.assert_array_equal(out["group_id"], [[3, 1, 2]])
    np.testing.assert_array_equal(out["positions"][0], [[3, 2, -1], [1, -1, -1], [0, -1, -1]])
    np.testing.assert_array_equal(out["slot"], [[2, 1, 0, 0]])


def test_single_behavior_and_empty_history():
    layer = BehaviorGrouping(num_groups=3, max_groups=2, max_per_group=2)
    out = _run(layer, [[2], [2]], [[3], [3]], [1, 0])
    np.testing.assert_array_equal(out["group_id"], [[2, 0], [0, 0]])
    np.testing.assert_array_equal(out["group_mask"], [[True, False], [False, False]])
    np.testing.assert_array_equal(out["max_timestamp"], [[3, -1], [-1, -1]])
    np.testing.assert_array_equal(out["positions"], [[[0, -1], [-1, -1]], [[-1, -1], [-1, -1]]])
    np.testing.assert_array_equal(out["slot"], [[0], [2]])


def test_max_groups_larger_than_num_groups_pads():
    out = _run(BehaviorGrouping(num_groups=2, max_groups=4, max_per_group=1), [[1, 0, 1]], [[1, 2, 3]], [3])
    np.testing.assert_array_equal(out["group_id"], [[1, 0, 0, 0]])
    np.testing.assert_array_equal(out["group_mask"], [[True, True, False, False]])
    np.testing.assert_array_equal(out["positions"][..., 0], [[2, 1, -1, -1]])
    np.testing.assert_array_equal(out["slot"], [[0, 1, 0]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_and_is_deterministic(seed):
    rng = np.random.default_rng(seed)
    b, seq_len, ng, g, m = 6, 40, 9, 4, 3
    groups = rng.integers(0, ng, size=(b, seq_len))
    # few distinct timestamps -> many ties between groups and inside groups
    timestamps = np.sort(rng.integers(0, 12, size=(b, seq_len)), axis=1)
    lengths = rng.integers(0, seq_len + 1, size=b)
    lengths[0], lengths[1] = 0, seq_len
    layer = BehaviorGrouping(num_groups=ng, max_groups=g, max_per_group=m)
    out = _run(layer, groups, timestamps, lengths)
    assert_nested_allclose(out, reference_grouping(groups, timestamps, lengths, ng, g, m))
    assert_nested_allclose(_run(layer, groups, timestamps, lengths), out)


def test_padding_values_are_ignored():
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 6, size=(3, 10))
    timestamps = np.sort(rng.integers(0, 100, size=(3, 10)), axis=1)
    lengths = np.array([4, 0, 7])
    layer = BehaviorGrouping(num_groups=6, max_groups=3, max_per_group=2)
    out = _run(layer, groups, timestamps, lengths)
    pad = np.arange(10)[None, :] >= lengths[:, None]
    groups2 = np.where(pad, rng.integers(0, 6, size=(3, 10)), groups)
    timestamps2 = np.where(pad, 10_000, timestamps)
    assert_nested_allclose(_run(layer, groups2, timestamps2, lengths), out)


def test_validation():
    with pytest.raises(ValueError, match="max_groups"):
        BehaviorGrouping(num_groups=3, max_groups=0, max_per_group=2)


def test_config_roundtrip():
    inputs = {"group_id": np.asarray(GROUPS, np.int64), "timestamp": np.asarray(TIMES, np.int64),
              "length": np.asarray(LENGTHS, np.int32)}
    assert_layer_config_roundtrip(
        BehaviorGrouping(num_groups=4, max_groups=3, max_per_group=2), inputs,
        expected_shapes={"positions": (2, 3, 2), "behavior_mask": (2, 3, 2), "group_id": (2, 3),
                         "group_mask": (2, 3), "max_timestamp": (2, 3), "slot": (2, 6)})
