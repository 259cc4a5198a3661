"""Imports tfrec first so TensorFlow loads with tf-keras (TF_USE_LEGACY_KERAS=1)."""
import tfrec  # noqa: F401

pytest_plugins = ["tests.redis_fixtures"]

# Property tests (hypothesis): the same examples on every run (derandomized, no example database), no
# per-example deadline on a loaded CI box; each module sets only its max_examples.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("tfrec", deadline=None, derandomize=True, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
settings.load_profile("tfrec")
