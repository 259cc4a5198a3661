"""ItemFeatureLookup: the item table inside the model, its unknown row, errors and checkpoints."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.data.schema import FeatureDef
from tfrec.layers.embedding import ItemFeatureLookup
from tfrec.testing import assert_layer_config_roundtrip, assert_nested_allclose

FEATURES = (
    FeatureDef("cat", "categorical", vocab_size=5),
    FeatureDef("tags", "multi_categorical", vocab_size=6, max_len=2),
    FeatureDef("price", "numeric"),
    FeatureDef("vec", "dense", dim=2),
)
TABLES = {
    "cat": np.array([4, 0, 2], np.int64),
    "tags": np.array([[1, 2], [3, -1], [-1, -1]], np.int64),
    "price": np.array([1.5, 0.0, -2.0], np.float32),
    "vec": np.array([[1, 2], [3, 4], [5, 6]], np.float32),
}
UNKNOWN = {"cat": -1, "tags": [-1, -1], "price": 0.0, "vec": [0.0, 0.0]}


def _expected(rows):
    """Per feature, TABLES rows for known items (row index) and the unknown value for None."""
    def value(name, r):
        return TABLES[name][r] if r is not None else np.asarray(UNKNOWN[name], TABLES[name].dtype)
    return {name: np.array([[value(name, r) for r in row] for row in rows], TABLES[name].dtype) for name in TABLES}


def test_lookup_known_and_unknown_items():
    layer = ItemFeatureLookup(3, FEATURES, TABLES)
    ids = np.array([[0, 2, 1], [-1, 3, 2**40]], np.int64)  # -1, n_items, huge -> the unknown row
    out = layer(ids)
    assert {k: v.dtype for k, v in out.items()} == {"cat": tf.int64, "tags": tf.int64, "price": tf.float32,
                                                    "vec": tf.float32}
    assert_nested_allclose(out, _expected([[0, 2, 1], [None, None, None]]), atol=0)
    small = np.array([[0, 2, 1], [-1, 3, 7]], np.int32)  # int32 ids look up the same rows
    assert_nested_allclose(layer(small), out, atol=0)


def test_rank_1_and_negative_ids():
    layer = ItemFeatureLookup(3, FEATURES, TABLES)
    out = layer(np.array([1, -7], np.int64))
    assert_nested_allclose(out, {k: v[0] for k, v in _expected([[1, None]]).items()}, atol=0)


def test_without_tables_every_item_is_unknown():
    layer = ItemFeatureLookup(3, FEATURES)
    assert_nested_allclose(layer(np.array([[0, 2, 5]], np.int64)), _expected([[None, None, None]]), atol=0)


def test_weights_are_non_trainable_with_an_unknown_row():
    layer = ItemFeatureLookup(3, FEATURES, TABLES)
    layer(np.array([0], np.int64))
    assert layer.trainable_weights == []
    shapes = {w.name.split("/")[-1].split(":")[0]: tuple(w.shape) for w in layer.non_trainable_weights}
    assert shapes == {"item_cat": (4,), "item_tags": (4, 2), "item_price": (4,), "item_vec": (4, 2)}
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(np.array([0, 1], np.int64))["vec"])
    assert tape.watched_variables() == ()
    del loss


def test_missing_column_names_it():
    tables = {k: v for k, v in TABLES.items() if k != "tags"}
    with pytest.raises(ValueError, match="'tags'"):
        ItemFeatureLookup(3, FEATURES, tables)


@pytest.mark.parametrize("name, bad", [
    ("vec", np.zeros((3, 3), np.float32)),   # wrong dim
    ("vec", np.zeros((2, 2), np.float32)),   # wrong n_items
    ("tags", np.zeros((3, 3), np.int64)),    # wrong max_len
    ("price", np.zeros((3, 1), np.float32)),  # extra axis
])
def test_wrong_table_shape_names_the_column(name, bad):
    with pytest.raises(ValueError, match=f"'{name}'"):
        ItemFeatureLookup(3, FEATURES, {**TABLES, name: bad})


def test_config_roundtrip():
    layer = ItemFeatureLookup(3, FEATURES, TABLES)
    rebuilt, _ = assert_layer_config_roundtrip(
        layer, np.array([[0, 1, 2, 3, -1]], np.int64),
        expected_shapes={"cat": (1, 5), "tags": (1, 5, 2), "price": (1, 5), "vec": (1, 5, 2)})
    assert "tables" not in layer.get_config()  # sizes only; the values live in the weights
    assert rebuilt.features == FEATURES


@pytest.mark.parametrize("build_before_restore", [True, False], ids=["built", "deferred"])
def test_checkpoint_restores_the_table(tmp_path, build_before_restore):
    ids = np.array([[0, 1, 2, 3]], np.int64)
    source = ItemFeatureLookup(3, FEATURES, TABLES)
    expected = source(ids)
    path = tf.train.Checkpoint(layer=source).save(str(tmp_path / "ckpt"))

    target = ItemFeatureLookup(3, FEATURES)  # no tables: every row unknown until restored
    if build_before_restore:
        target(ids)
    tf.train.Checkpoint(layer=target).restore(path).assert_existing_objects_matched()
    assert_nested_allclose(target(ids), expected, atol=0)
