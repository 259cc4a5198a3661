"""RedisCache against a real redis-server: outages, key layout, TTLs in ms; the fixture itself."""
import os
import signal
import time

import numpy as np
import pytest
import redis

from tests import redis_fixtures
from tests.redis_fixtures import RedisServer, redis_server  # noqa: F401 - the fixture
from tfrec.cache import CacheUnavailable, RedisCache

STATE = {"x": np.arange(3, dtype=np.float32)}


def raw_client(server):
    return redis.Redis.from_url(server.url, socket_timeout=1)


def assert_all_unavailable(cache, url):
    calls = [
        lambda: cache.get("m", 1, 1),
        lambda: cache.get_many("m", 1, [1, 2]),
        lambda: cache.put("m", 1, 1, STATE),
        lambda: cache.put_many("m", 1, [1], {"x": np.zeros((1, 3))}),
        lambda: cache.delete_version("m", 1),
    ]
    for call in calls:
        start = time.monotonic()
        with pytest.raises(CacheUnavailable, match=url):
            call()
        assert time.monotonic() - start < 2


def test_redis_stopped_mid_test_then_back(redis_server):  # noqa: F811
    cache = RedisCache(redis_server.url)
    cache.put("m", 1, 1, STATE)
    assert cache.get("m", 1, 1) is not None
    redis_server.stop()
    assert_all_unavailable(cache, redis_server.url)
    redis_server.start()  # same port, empty (no persistence)
    assert cache.get("m", 1, 1) is None
    cache.put("m", 1, 1, STATE)
    np.testing.assert_array_equal(cache.get("m", 1, 1)["x"], STATE["x"])
    cache.close()


def test_construction_against_a_stopped_server_does_not_raise(redis_server):  # noqa: F811
    redis_server.stop()
    cache = RedisCache(redis_server.url)
    assert_all_unavailable(cache, redis_server.url)
    redis_server.start()
    cache.put("m", 1, 1, STATE)
    assert cache.get("m", 1, 1) is not None


def test_hung_server_times_out_quickly(redis_server):  # noqa: F811
    cache = RedisCache(redis_server.url)
    cache.put("m", 1, 1, STATE)
    os.kill(redis_server.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        with pytest.raises(CacheUnavailable, match="Timeout"):
            cache.get("m", 1, 1)
        assert time.monotonic() - start < 1
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)
    assert cache.get("m", 1, 1) is not None


def test_key_layout_and_millisecond_ttl(redis_server):  # noqa: F811
    cache = RedisCache(redis_server.url, ttl_seconds=0.3, key_prefix="svc")
    cache.put("dmgin", 7, 42, STATE)
    client = raw_client(redis_server)
    assert client.keys("*") == [b"svc:dmgin:7:42"]
    assert 0 < client.pttl("svc:dmgin:7:42") <= 300
    cache.put("dmgin", 7, 43, STATE, ttl_seconds=60)
    assert 59_000 < client.pttl("svc:dmgin:7:43") <= 60_000


def test_prefixes_and_glob_characters_do_not_leak(redis_server):  # noqa: F811
    a = RedisCache(redis_server.url, key_prefix="a")
    b = RedisCache(redis_server.url, key_prefix="b")
    a.put("m*", 1, 1, STATE)
    a.put("mx", 1, 1, STATE)
    b.put("m*", 1, 1, STATE)
    assert a.delete_version("m*", 1) == 1  # neither "mx" nor prefix "b"
    assert a.get("mx", 1, 1) is not None
    assert b.get("m*", 1, 1) is not None
    assert b.get("m*", 2, 1) is None


def test_url_hides_the_password():
    cache = RedisCache("redis://user:s3cret@127.0.0.1:1/0")
    assert "s3cret" not in cache.url and "s3cret" not in repr(cache)
    assert cache.url == "redis://user:***@127.0.0.1:1/0"


def test_bad_url_is_a_value_error():
    with pytest.raises(ValueError, match="http://x"):
        RedisCache("http://x")


def test_server_restarts_on_its_port():
    with RedisServer(binary=redis_fixtures.redis_binary_or_fail()) as server:
        port = server.port
        assert redis_fixtures._ping(port)
        server.stop()
        assert not server.running and not redis_fixtures._ping(port)
        server.start()
        assert server.port == port and redis_fixtures._ping(port)


def test_missing_binary_fails_unless_skipping_is_asked(monkeypatch):
    monkeypatch.setattr(redis_fixtures.shutil, "which", lambda name: None)
    monkeypatch.delenv("TFREC_SKIP_REDIS", raising=False)
    with pytest.raises(pytest.fail.Exception, match="redis-server not found: install Debian's"):
        redis_fixtures.redis_binary_or_fail()
    monkeypatch.setenv("TFREC_SKIP_REDIS", "1")
    with pytest.raises(pytest.skip.Exception):
        redis_fixtures.redis_binary_or_fail()
