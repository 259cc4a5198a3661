"""PrefixSemanticIdEmbedding (SIREN eq. 3): the concatenation of the item's prefix rows of one shared table."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.multimodal.prefix_semantic_id_embedding import (
    PrefixSemanticIdEmbedding,
)
from tfrec.testing import assert_layer_config_roundtrip

# 6 prefixes, K = 3, dim = 4; -1 (item without a code) and ids >= 6 take the reserved row 6
IDS = np.array([[0, 2, 5], [1, 4, 3], [-1, -1, -1], [0, 6, 100]], np.int64)


def _expected(layer, ids):
    table = layer.table.embeddings.numpy()
    assert table.shape == (layer.num_prefixes + 1, layer.dim)
    rows = np.where((ids >= 0) & (ids < layer.num_prefixes), ids, layer.num_prefixes)
    return table[rows].reshape(ids.shape[:-1] + (layer.depth * layer.dim,))  # concat over the K prefixes


def test_concat_of_the_table_rows():
    layer = PrefixSemanticIdEmbedding(num_prefixes=6, depth=3, dim=4)
    out = layer(IDS).numpy()
    assert out.shape == (4, 12) and layer.output_dim == 12
    np.testing.assert_array_equal(out, _expected(layer, IDS))
    np.testing.assert_array_equal(out[0, 4:8], layer.table.embeddings.numpy()[2])  # 2nd prefix, 2nd block
    # every unknown id reads the same reserved row, distinct from the known rows
    unknown = out[2].reshape(3, 4)
    np.testing.assert_array_equal(unknown, np.tile(layer.table.embeddings.numpy()[6], (3, 1)))
    np.testing.assert_array_equal(out[3, 4:], np.concatenate([unknown[0], unknown[0]]))
    assert [w.name.split("/")[-1] for w in layer.trainable_weights] == ["embeddings:0"]


def test_rank3_input_and_int32_ids():
    layer = PrefixSemanticIdEmbedding(num_prefixes=6, depth=3, dim=4)
    ids = np.stack([IDS, IDS[::-1]]).astype(np.int32)  # [2, 4, 3]
    out = layer(ids).numpy()
    assert out.shape == (2, 4, 12)
    np.testing.assert_array_equal(out, _expected(layer, ids.astype(np.int64)))


def test_static_output_shape_in_a_graph():
    layer = PrefixSemanticIdEmbedding(num_prefixes=6, depth=2, dim=5)
    fn = tf.function(layer, input_signature=[tf.TensorSpec([None, None, 2], tf.int64)])
    assert fn.get_concrete_function().structured_outputs.shape.as_list() == [None, None, 10]


@pytest.mark.parametrize("args", [(0, 3, 4), (6, 0, 4), (6, 3, 0)])
def test_validation(args):
    with pytest.raises(ValueError, match="num_prefixes, depth and dim must be positive"):
        PrefixSemanticIdEmbedding(*args)


def test_config_roundtrip():
    assert_layer_config_roundtrip(PrefixSemanticIdEmbedding(num_prefixes=6, depth=3, dim=4), IDS,
                                  expected_shapes=(4, 12))
