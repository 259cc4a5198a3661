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
