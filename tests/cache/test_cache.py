"""The UserStateCache contract, run against every backend (SQLite in tmp_path, a real Redis)."""
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from tests.cache import FakeClock, assert_states_equal, mixed_state
from tests.redis_fixtures import redis_server  # noqa: F401 - the fixture
from tfrec.cache import RedisCache, SQLiteCache, UserStateCache


@dataclass
class Backend:
    cache: UserStateCache
    advance: Callable[[float], None]  # lets `seconds` of wall-clock time pass for the TTLs


@pytest.fixture(params=["sqlite", "redis"])
def backend(request, tmp_path):
    if request.param == "sqlite":
        clock = FakeClock()
        backend = Backend(SQLiteCache(tmp_path / "cache.db", clock=clock), clock.advance)
    else:
        server = request.getfixturevalue("redis_server")
        backend = Backend(RedisCache(server.url), time.sleep)
    yield backend
    backend.cache.close()


@pytest.fixture
def cache(backend):
    return backend.cache


def batch_of(n, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "group_states": rng.normal(size=(n, 3, 4)).astype(np.float32),
        "group_mask": rng.integers(0, 2, size=(n, 3)).astype(bool),
        "group_ids": rng.integers(0, 100, size=(n, 3)).astype(np.int32),
        "fingerprint": rng.integers(-(2**62), 2**62, size=n).astype(np.int64),
    }


def row(batch, i):
    return {key: value[i] for key, value in batch.items()}


def test_round_trip_is_exact(cache):
    state = mixed_state()
    cache.put("dmgin", 1, 42, state)
    assert_states_equal(cache.get("dmgin", 1, 42), state)
    assert cache.url.startswith(("sqlite:///", "redis://"))


def test_miss_returns_none_and_counters_count(cache):
    assert (cache.hits, cache.misses) == (0, 0)
    assert cache.get("dmgin", 1, 7) is None
    cache.put("dmgin", 1, 7, {"x": np.ones(2, np.float32)})
    assert cache.get("dmgin", 1, 7) is not None
    cache.get_many("dmgin", 1, [7, 8, 9])
    assert (cache.hits, cache.misses) == (2, 3)


def test_versions_and_models_are_isolated(cache):
    cache.put("dmgin", 1, 5, {"x": np.array([1.0])})
    assert cache.get("dmgin", 2, 5) is None
    assert cache.get("din", 1, 5) is None
    cache.put("dmgin", 2, 5, {"x": np.array([2.0])})
    assert cache.get("dmgin", 1, 5)["x"][0] == 1.0
    assert cache.get("dmgin", 2, 5)["x"][0] == 2.0


def test_put_overwrites(cache):
    cache.put("dmgin", 1, 5, {"x": np.array([1.0])})
    cache.put("dmgin", 1, 5, {"y": np.array([2], np.int8)})
    assert_states_equal(cache.get("dmgin", 1, 5), {"y": np.array([2], np.int8)})


def test_put_many_and_get_many_with_a_missing_id(cache):
    batch = batch_of(3)
    ids = np.array([10, 11, 13], np.int64)  # numpy ids are fine
    assert cache.put_many("dmgin", 3, ids, batch) == 3
    got = cache.get_many("dmgin", 3, [10, 12, 13, 11])
    assert got[1] is None
    for state, i in zip([got[0], got[2], got[3]], [0, 2, 1]):
        assert_states_equal(state, row(batch, i))
    assert (cache.hits, cache.misses) == (3, 1)
    assert cache.get_many("dmgin", 3, []) == []
    assert cache.put_many("dmgin", 3, [], {"x": np.zeros((0, 2))}) == 0


def test_large_batches(cache):
    n = 2500  # more ids than one SQLite statement may bind
    batch = {"x": np.arange(n * 2, dtype=np.float32).reshape(n, 2)}
    assert cache.put_many("dmgin", 1, range(n), batch) == n
    got = cache.get_many("dmgin", 1, list(range(n)))
    assert all(state is not None for state in got)
    np.testing.assert_array_equal(got[n - 1]["x"], batch["x"][n - 1])


def test_ttl_expiry(backend):
    cache = backend.cache
    cache.put("dmgin", 1, 1, {"x": np.zeros(1)}, ttl_seconds=0.3)
    cache.put("dmgin", 1, 2, {"x": np.zeros(1)})  # no TTL: never expires
    cache.ttl_seconds = 0.3  # the default TTL applies to puts without one
    cache.put_many("dmgin", 1, [3], {"x": np.zeros((1, 1))})
    assert [s is not None for s in cache.get_many("dmgin", 1, [1, 2, 3])] == [True] * 3
    backend.advance(0.6)
    assert [s is not None for s in cache.get_many("dmgin", 1, [1, 2, 3])] == [False, True, False]


def test_delete_version_removes_only_that_version(cache):
    cache.put_many("dmgin", 1, [1, 2, 3], {"x": np.zeros((3, 2))})
    cache.put_many("dmgin", 2, [1, 2], {"x": np.ones((2, 2))})
    cache.put("din", 1, 1, {"x": np.zeros(2)})
    cache.put("dmgin", 11, 1, {"x": np.zeros(2)})  # "1" must not match version 11
    assert cache.delete_version("dmgin", 1) == 3
    assert cache.get_many("dmgin", 1, [1, 2, 3]) == [None] * 3
    assert all(s is not None for s in cache.get_many("dmgin", 2, [1, 2]))
    assert cache.get("din", 1, 1) is not None
    assert cache.get("dmgin", 11, 1) is not None
    assert cache.delete_version("dmgin", 1) == 0


@pytest.mark.parametrize("call, match", [
    (lambda c: c.get("", 1, 1), "model"),
    (lambda c: c.get("a:b", 1, 1), "model"),
    (lambda c: c.get(3, 1, 1), "model"),
    (lambda c: c.get("m", "1", 1), "version"),
    (lambda c: c.get("m", 1.0, 1), "version"),
    (lambda c: c.get("m", True, 1), "version"),
    (lambda c: c.get("m", 1, 2**63), "user_id"),
    (lambda c: c.get_many("m", 1, "123"), "user_ids"),
    (lambda c: c.put("m", 1, 1, {"x": np.array([object()])}), "x"),
    (lambda c: c.put("m", 1, 1, {"x": np.zeros(1)}, ttl_seconds=-1), "ttl_seconds"),
    (lambda c: c.put_many("m", 1, [1, 2], {"x": np.zeros((3, 2))}), "leading dimension"),
    (lambda c: c.put_many("m", 1, [1], {"x": np.float32(1)}), "leading dimension"),
    (lambda c: c.put_many("m", 1, [1], {}), "states"),
    (lambda c: c.delete_version("m:x", 1), "model"),
])
def test_bad_arguments_are_value_errors(cache, call, match):
    with pytest.raises(ValueError, match=match):
        call(cache)


def test_numpy_ints_are_accepted(cache):
    cache.put("m", np.int32(4), np.uint16(9), {"x": np.zeros(1)})
    assert cache.get("m", 4, 9) is not None
