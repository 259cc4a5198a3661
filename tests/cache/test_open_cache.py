"""open_cache: which url forms give which backend, and the error for the rest."""
import pytest

from tfrec.cache import RedisCache, SQLiteCache, open_cache


def test_absolute_sqlite_url_round_trips(tmp_path):
    path = tmp_path / "abs.db"
    cache = open_cache(f"sqlite://{path}", ttl_seconds=5)
    assert isinstance(cache, SQLiteCache)
    assert cache.path == path and cache.ttl_seconds == 5
    assert cache.url == f"sqlite://{path}"
    assert open_cache(cache.url).path == path


@pytest.mark.parametrize("url, relative", [
    ("sqlite:sub/rel.db", "sub/rel.db"),
    ("plain.db", "plain.db"),
    ("dir/state.sqlite", "dir/state.sqlite"),
    ("x.sqlite3", "x.sqlite3"),
])
def test_relative_sqlite_forms(tmp_path, monkeypatch, url, relative):
    monkeypatch.chdir(tmp_path)
    cache = open_cache(url)
    assert isinstance(cache, SQLiteCache)
    assert cache.path == tmp_path / relative
    cache.close()


def test_redis_url_does_not_connect():
    cache = open_cache("redis://127.0.0.1:1/3", ttl_seconds=2)
    assert isinstance(cache, RedisCache)
    assert cache.url == "redis://127.0.0.1:1/3" and cache.ttl_seconds == 2


@pytest.mark.parametrize("url", [None, "", "  ", "none", "None"])
def test_disabled(url):
    assert open_cache(url) is None


@pytest.mark.parametrize("url", ["memcached://h:1", "cache.txt", "sqlite://host/x.db", "sqlite:"])
def test_unknown_forms_name_the_url_and_the_accepted_ones(url):
    with pytest.raises(ValueError) as info:
        open_cache(url)
    message = str(info.value)
    assert repr(url) in message and "redis://host:port/db" in message and "sqlite:///" in message
