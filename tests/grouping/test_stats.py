"""Sequence lengths before / after grouping, against a hand count."""
import numpy as np
import pytest

from tfrec.grouping.stats import format_grouping_stats, grouping_stats


def test_against_hand_count():
    # user 0: items 0,1,2,0 -> groups 1,1,2,1 (2 distinct, largest 3); user 1: none; user 2: item 3, 99 -> 3, 0
    table = np.array([1, 1, 2, 3])
    stats = grouping_stats([0, 4, 4, 6], [0, 1, 2, 0, 3, 99], table)
    assert stats["users"] == 2 and stats["behaviors"] == 6
    assert stats["raw_length"]["mean"] == 3.0 and stats["raw_length"]["p100"] == 4
    assert stats["groups_per_user"]["mean"] == 2.0           # (2 + 2) / 2; unknown item -> group 0
    assert stats["largest_group"]["p100"] == 3 and stats["largest_group"]["p50"] == 2.0  # median of 3 and 1
    assert stats["compression"] == 1.5
    assert "| raw sequence length (behaviors) | 3.0 |" in format_grouping_stats(stats)


def test_bad_splits():
    with pytest.raises(ValueError, match="row_splits"):
        grouping_stats([0, 3], [1, 2], np.array([0, 1, 1]))


def test_hard_gsu_stats_hand_computed():
    from tfrec.grouping.stats import hard_gsu_stats

    batch = {  # 2 examples, M = 2; example 0 has 3 behaviors, example 1 has 2 (+1 padded)
        "hist_semantic_id": np.array([[[1, 0], [2, 5], [1, 3]], [[4, 4], [4, 1], [4, 4]]]),
        "item_semantic_id": np.array([[1, 3], [2, 2]]),
        "hist_length": np.array([3, 2]),
    }
    one = hard_gsu_stats([batch], levels=1)
    assert one["examples"] == 2 and one["kept"]["mean"] == 1.0  # 2 kept for example 0, 0 for 1
    assert one["kept_fraction"] == 2 / 5 and one["empty_fraction"] == 0.5
    two = hard_gsu_stats([batch], levels=2)
    assert two["kept"]["p100"] == 1.0 and two["kept_fraction"] == 1 / 5  # only [1, 3] matches [1, 3]
    batch["item_semantic_id"] = np.array([[1, 3], [4, 4]])  # the padded [4, 4] must not count
    assert hard_gsu_stats([batch], levels=2)["kept_fraction"] == 2 / 5
