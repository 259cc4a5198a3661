"""ItemGroupLookup: the item -> group table as a non-trainable weight; unknown ids -> group 0."""
import numpy as np
import pytest

from tfrec.layers.item_group_lookup import ItemGroupLookup
from tfrec.testing import assert_layer_config_roundtrip

TABLE = [2, 0, 1, 3]


def test_lookup_and_unknown_ids():
    layer = ItemGroupLookup(n_items=4, num_groups=4, table=TABLE)
    out = layer(np.array([[0, 1, 2, 3], [4, -1, 1000, 3]], np.int64))
    assert out.dtype == "int32"
    np.testing.assert_array_equal(out.numpy(), [[2, 0, 1, 3], [0, 0, 0, 3]])


def test_table_is_a_non_trainable_weight():
    layer = ItemGroupLookup(n_items=4, num_groups=4, table=TABLE)
    layer(np.array([0]))
    assert layer.trainable_weights == []
    assert [w.name for w in layer.non_trainable_weights] == [layer.table.name]
    np.testing.assert_array_equal(layer.get_weights()[0], TABLE)
    assert "table" not in layer.get_config()  # sizes only; the values travel as weights


def test_default_table_is_all_unknown():
    layer = ItemGroupLookup(n_items=3, num_groups=2)
    np.testing.assert_array_equal(layer(np.array([0, 1, 2])).numpy(), [0, 0, 0])


@pytest.mark.parametrize("table, match", [
    ([1, 2, 3], r"shape \(4,\)"),
    ([[1, 2], [3, 0]], r"shape \(4,\)"),
    ([0, 1, 4, 2], r"\[0, 4\)"),
    ([0, -1, 2, 2], r"\[0, 4\)"),
])
def test_table_validation(table, match):
    with pytest.raises(ValueError, match=match):
        ItemGroupLookup(n_items=4, num_groups=4, table=table)


def test_config_roundtrip():
    # from_config builds an all-zero table; the round trip copies the weights, so outputs agree.
    rebuilt, _ = assert_layer_config_roundtrip(ItemGroupLookup(n_items=4, num_groups=4, table=TABLE),
                                               np.array([[0, 1, 2, 3, 9]], np.int64))
    np.testing.assert_array_equal(rebuilt.get_weights()[0], TABLE)
