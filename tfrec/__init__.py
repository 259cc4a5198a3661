"""tfrec: lifelong-user-behavior CTR models on TensorFlow (tf-keras 2.16, legacy Keras).

Importing tfrec selects tf-keras (Keras 2) via ``TF_USE_LEGACY_KERAS=1`` before TensorFlow is
imported, and fails fast if ``tf.keras`` is Keras 3 anyway (TensorFlow imported earlier without
the variable set).
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

if not tf.keras.__name__.startswith("tf_keras"):
    raise ImportError(
        "tfrec needs tf-keras (Keras 2), but tf.keras is "
        f"{tf.keras.__name__!r}. Set TF_USE_LEGACY_KERAS=1 before importing TensorFlow "
        "(or import tfrec first) and install tf-keras==2.16.0."
    )

__version__ = "0.1.0"
