"""IdEmbedding: known ids use their row, every other id the extra OOV row."""
import numpy as np
import pytest

from tfrec.layers.id_embedding import IdEmbedding
from tfrec.testing import assert_layer_config_roundtrip


def test_rows_and_oov():
    layer = IdEmbedding(vocab_size=4, dim=2)
    layer.build(None)
    table = np.arange(10, dtype=np.float32).reshape(5, 2)
    layer.set_weights([table])
    ids = np.array([[0, 3, 4, -1], [100, 2, -7, 1]], np.int64)
    out = layer(ids).numpy()
    assert out.shape == (2, 4, 2)
    np.testing.assert_array_equal(out, table[[[0, 3, 4, 4], [4, 2, 4, 1]]])
    np.testing.assert_array_equal(layer(ids.astype(np.int32)).numpy(), out)


def test_validation():
    with pytest.raises(ValueError, match="vocab_size"):
        IdEmbedding(vocab_size=0, dim=2)
    with pytest.raises(ValueError, match="dim"):
        IdEmbedding(vocab_size=3, dim=0)


def test_config_roundtrip():
    assert_layer_config_roundtrip(IdEmbedding(vocab_size=4, dim=2), np.array([[0, 5, -1]], np.int64))
