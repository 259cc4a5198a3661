"""The seeded, untrained models the cost benches time (weights do not change a graph's cost).

``python bench/<script>.py`` puts ``bench/`` on ``sys.path``, so scripts import this as ``untrained``;
``tfrec`` itself comes from the environment (``PYTHONPATH``), which lets ``serving_ab.py`` export the
same model with another checkout's code.
"""
import numpy as np

import tfrec  # noqa: F401  (tf-keras before TensorFlow)
import tensorflow as tf

from tfrec.grouping import GroupTable
from tfrec.training import build_model, dummy_features

N_GROUPS = 100  # K-means k of the random item -> group table


def untrained_model(model_name, spec, k: int = 16, config=None, seed: int = 0):
    """``build_model(model_name, spec, config)``, built on dummy features, weights drawn from ``seed``.
    DMGIN gets a fixed random item -> group table (``N_GROUPS`` groups) and ``top_k_groups`` = k."""
    config, groups = dict(config or {}), None
    if model_name == "dmgin":
        table = np.random.default_rng(1).integers(1, N_GROUPS + 1, spec.n_items).astype(np.int32)
        groups = GroupTable(table=table, centroids=np.zeros((N_GROUPS, 1), np.float32), n_groups=N_GROUPS + 1,
                            report={})
        config.setdefault("top_k_groups", k)
    tf.keras.utils.set_random_seed(seed)
    model = build_model(model_name, spec, config, groups=groups)
    model(dummy_features(spec))
    return model
