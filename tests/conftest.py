"""Imports tfrec first so TensorFlow loads with tf-keras (TF_USE_LEGACY_KERAS=1)."""
import tfrec  # noqa: F401

pytest_plugins = ["tests.redis_fixtures"]
