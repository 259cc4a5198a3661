"""ItemEmbedding: [E_id(item); E_f(feature_f(item)) ...] in declaration order, unknown items included."""
import numpy as np
import pytest

from tfrec.data.schema import FeatureDef
from tfrec.layers.embedding import ItemEmbedding
from tfrec.layers.id_embedding import IdEmbedding
from tfrec.testing import assert_layer_config_roundtrip

FEATURES = (
    FeatureDef("cat", "categorical", vocab_size=2, embedding_dim=3),
    FeatureDef("price", "numeric", transform="log1p"),
    FeatureDef("tags", "multi_categorical", vocab_size=3, max_len=2, embedding_dim=1),
    FeatureDef("vec", "dense", dim=2),
)
TABLES = {
    "cat": np.array([1, 0, 1], np.int64),
    "price": np.array([np.e - 1, 0.0, -4.0], np.float32),
    "tags": np.array([[0, 2], [-1, -1], [1, -1]], np.int64),
    "vec": np.array([[1, 0], [0, 1], [2, 2]], np.float32),
}
ID_TABLE = np.arange(8, dtype=np.float32).reshape(4, 2)            # 3 items + OOV row 3
CAT_TABLE = np.array([[10, 11, 12], [20, 21, 22], [90, 91, 92]], np.float32)  # 2 ids + OOV
PRICE_KERNEL, PRICE_BIAS = np.array([[1.0, -1.0]], np.float32), np.array([0.5, 0.25], np.float32)
TAGS_TABLE = np.array([[2], [4], [8], [100]], np.float32)           # 3 ids + OOV
VEC_KERNEL, VEC_BIAS = np.array([[1, 2], [3, 4]], np.float32), np.array([0.0, 1.0], np.float32)


def _layer():
    layer = ItemEmbedding(3, 2, FEATURES, TABLES)
    layer(np.array([0], np.int64))
    layer.id_embedding.embeddings.assign(ID_TABLE)
    cat, price, tags, vec = layer.feature_embeddings
    cat.embeddings.assign(CAT_TABLE)
    price.kernel.assign(PRICE_KERNEL)
    price.bias.assign(PRICE_BIAS)
    tags.embeddings.assign(TAGS_TABLE)
    vec.kernel.assign(VEC_KERNEL)
    vec.bias.assign(VEC_BIAS)
    return layer


def _row(item_row, cat_row, price, tags, vec):
    return np.concatenate([ID_TABLE[item_row], CAT_TABLE[cat_row], PRICE_KERNEL[0] * price + PRICE_BIAS,
                           [tags], np.asarray(vec, np.float32) @ VEC_KERNEL + VEC_BIAS])


# item 0: cat 1, price log1p(e - 1) = 1, tags mean(2, 8) = 5, vec [1, 0]
# item 1: cat 0, price 0, tags empty -> 0, vec [0, 1]
# item 2: cat 1, price log1p(max(-4, 0)) = 0, tags [4], vec [2, 2]
# unknown: id OOV row 3, cat -1 -> OOV row 2, price 0, tags empty -> 0, vec 0
EXPECTED = {
    0: _row(0, 1, 1.0, 5.0, [1, 0]),
    1: _row(1, 0, 0.0, 0.0, [0, 1]),
    2: _row(2, 1, 0.0, 4.0, [2, 2]),
    None: _row(3, 2, 0.0, 0.0, [0, 0]),
}


def test_concat_in_declaration_order():
    layer = _layer()
    assert layer.output_dim == 2 + 3 + 2 + 1 + 2
    ids = np.array([[0, 1, 2], [3, -1, 2**40]], np.int64)
    out = layer(ids).numpy()
    assert out.shape == (2, 3, 10)
    expected = np.array([[EXPECTED[0], EXPECTED[1], EXPECTED[2]], [EXPECTED[None]] * 3])
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_no_features_is_the_id_embedding_alone():
    layer = ItemEmbedding(3, 2)
    ids = np.array([[0, 2, 3, -1]], np.int64)
    layer(ids)
    assert layer.output_dim == 2
    assert layer.lookup is None
    assert len(layer.weights) == 1
    layer.set_weights([ID_TABLE])
    reference = IdEmbedding(3, 2)
    reference.build(None)
    reference.set_weights([ID_TABLE])
    np.testing.assert_array_equal(layer(ids).numpy(), reference(ids).numpy())
    np.testing.assert_array_equal(layer(ids).numpy(), ID_TABLE[[[0, 2, 3, 3]]])


def test_item_table_is_not_trainable():
    layer = _layer()
    # id table + cat + price (kernel, bias) + tags + vec (kernel, bias); the 4 item-table columns are frozen.
    assert len(layer.trainable_weights) == 7
    assert len(layer.non_trainable_weights) == 4


@pytest.mark.parametrize("features", [(), FEATURES], ids=["ids_only", "all_kinds"])
def test_config_roundtrip(features):
    layer = ItemEmbedding(3, 2, features, TABLES if features else None)
    rebuilt, out = assert_layer_config_roundtrip(layer, np.array([[0, 1, 2, 3, -1]], np.int64))
    assert out.shape[-1] == layer.output_dim
    assert rebuilt.features == features
    assert "tables" not in layer.get_config()


def test_features_as_dicts():
    layer = ItemEmbedding(3, 2, [fd.to_dict() for fd in FEATURES], TABLES)
    assert layer.features == FEATURES
    assert layer.output_dim == 10
