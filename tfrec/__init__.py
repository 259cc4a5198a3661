"""tfrec: lifelong-user-behavior CTR models on TensorFlow (tf-keras 2.16, legacy Keras).

Importing tfrec selects tf-keras (Keras 2) via ``TF_USE_LEGACY_KERAS=1`` for the TensorFlow import
that follows, and fails fast if TensorFlow was imported before without it (``tf.keras`` would be
Keras 3). TensorFlow itself is imported only when something needs it (a layer, a model, the data
pipeline, or the notebook API below), so ``tfrec --help`` answers at once.

The notebook API (``tfrec.api``), at the top level:

    import tfrec
    data = tfrec.open_data("DATA")                       # schema, item table, groups, splits
    model = tfrec.build_model("din", data)               # any registered model
    model.fit(data.dataset("train", shuffle=True), epochs=2)
    print(tfrec.evaluate(model, data, "test"))           # AUC / GAUC / logloss
    tfrec.export_model(model, "saved_models", "din")     # user_tower / score / serving_default
"""
import os
import sys

# Whether the user chose TensorFlow's C++ log level (the `tfrec` command hides its noise otherwise).
TF_LOG_LEVEL_FROM_USER = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"


def check_keras() -> None:
    """Raises ImportError when ``tf.keras`` is Keras 3 (TensorFlow imported before tfrec without
    ``TF_USE_LEGACY_KERAS=1``) or tf-keras is missing."""
    import tensorflow as tf

    try:
        name = tf.keras.__name__
    except Exception as err:  # noqa: BLE001 - TF raises when tf-keras is missing under the legacy flag
        raise ImportError(f"tfrec needs tf-keras==2.16.0 (pip install tf-keras==2.16.0): {err}") from None
    if not name.startswith("tf_keras"):
        raise ImportError(
            "tfrec needs tf-keras (Keras 2), but tf.keras is "
            f"{name!r}. Set TF_USE_LEGACY_KERAS=1 before importing TensorFlow "
            "(or import tfrec first) and install tf-keras==2.16.0."
        )


if "tensorflow" in sys.modules:  # imported before us: it may already have chosen Keras 3
    check_keras()

_API = ("open_data", "DataDir", "build_model", "evaluate", "export_model", "write_tfrecords", "load_schema")


def __getattr__(name):
    if name in _API:
        from tfrec import api

        return getattr(api, name)
    raise AttributeError(f"module 'tfrec' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
