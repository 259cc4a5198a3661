"""GroupRepresentation (DMGIN eq. 5): one projection of the concatenated group parts."""
import numpy as np

from tfrec.layers.group_representation import GroupRepresentation
from tfrec.testing import assert_layer_config_roundtrip


def _inputs():
    rng = np.random.default_rng(0)
    return [rng.normal(size=(2, 3, d)).astype(np.float32) for d in (2, 3, 1, 4)]


def test_matches_reference():
    parts = _inputs()
    layer = GroupRepresentation(dim=5)
    out = layer(parts).numpy()
    kernel, bias = layer.project.get_weights()
    np.testing.assert_allclose(out, np.concatenate(parts, -1) @ kernel + bias, atol=1e-5)


def test_config_roundtrip():
    assert_layer_config_roundtrip(GroupRepresentation(dim=5), _inputs())
