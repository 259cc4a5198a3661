"""Shared serving fixtures: two small exported models and one ``tfrec serve`` process on loopback."""
import numpy as np
import pytest
import tensorflow as tf

from tests.models.test_models import SPEC, make_din, make_dmgin
from tfrec.export import export_saved_model
from tfrec.serving.process import ServerProcess
from tfrec.testing import random_features

# Small limits so the over-limit paths are cheap to hit.
MAX_REQUEST_BYTES = 1_000_000
MAX_CONCURRENT = 2


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``base/{dmgin,din}/1`` plus the Keras models that produced them."""
    base = tmp_path_factory.mktemp("saved_models")
    tf.keras.utils.set_random_seed(7)
    features = random_features(SPEC, 2, 4, seed=0)
    models = {"dmgin": make_dmgin(), "din": make_din()}
    for name, model in models.items():
        model(features)
        export_saved_model(model, SPEC, base, name)
    return {"base": base, "models": models}


@pytest.fixture(scope="session")
def server(exported, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    with ServerProcess(["--model-base-path", str(exported["base"]), "--grpc-max-threads", "2",
                        "--max-concurrent-requests", str(MAX_CONCURRENT),
                        "--max-request-bytes", str(MAX_REQUEST_BYTES)], log_path=log) as proc:
        yield proc


def keras_probabilities(model, features, candidates):
    """The Keras model's click probabilities ``[B, C]`` (the reference for the server)."""
    state = model.encode_user({k: tf.constant(v) for k, v in features.items()}, training=False)
    return model.score(state, tf.constant(candidates, tf.int64), training=False).numpy()


def history_features(batch=3, length=12, seed=5):
    """User-tower inputs (numpy) in the signature's dtypes."""
    f = random_features(SPEC, batch, length, seed=seed)
    keys = SPEC.user_input_signature()
    return {k: np.asarray(f[k]) for k in keys}
