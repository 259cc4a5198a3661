"""Redis backend of the user-state cache, shared by every serving replica.

One Redis string per entry, under ``f"{key_prefix}:{model}:{version}:{user_id}"``; the TTL is
Redis's own (``SET ... PX``, in milliseconds, so sub-second TTLs work). ``get_many`` is one
MGET, ``put_many`` one pipelined batch of SETs, ``delete_version`` a SCAN over the version's
keys plus DELs.

Failure model: the client never retries and every socket operation times out after
``socket_timeout`` seconds (0.25 by default), so a dead or hung Redis costs a caller well under
a second; every ``redis.exceptions.RedisError`` surfaces as ``CacheUnavailable``. Constructing
the cache does not connect, so it succeeds while Redis is down; the connection pool reconnects
by itself once the server is back.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import redis

from tfrec.cache.base import CacheUnavailable, UserStateCache

_DELETE_BATCH = 500


def _redact(url: str) -> str:
    """The url without its password (it ends up in logs and error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _glob_escape(text: str) -> str:
    """Escapes Redis MATCH pattern metacharacters."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class RedisCache(UserStateCache):
    """User-state cache in Redis at ``url`` (``redis://host:port/db``, ``rediss://`` for TLS)."""

    def __init__(self, url: str, ttl_seconds: float | None = None,
                 socket_timeout: float = 0.25, key_prefix: str = "tfrec"):
        super().__init__(ttl_seconds)
        if not isinstance(key_prefix, str) or not key_prefix:
            raise ValueError(f"key_prefix must be a non-empty string, got {key_prefix!r}")
        if not socket_timeout > 0:
            raise ValueError(f"socket_timeout must be positive, got {socket_timeout!r}")
        self.url = _redact(str(url))
        self.key_prefix = key_prefix
        try:
            # from_url only parses: nothing connects until the first command.
            self._client = redis.Redis.from_url(
                url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
                retry_on_timeout=False, health_check_interval=0,
            )
        except ValueError as err:
            raise ValueError(f"bad Redis url {self.url!r}: {err}") from err

    def _key(self, model: str, version: int, user_id: int) -> str:
        return f"{self.key_prefix}:{model}:{version}:{user_id}"

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except redis.exceptions.RedisError as err:
            raise CacheUnavailable(f"{self.url}: {type(err).__name__}: {err}") from err

    def _get_blobs(self, model, version, user_ids):
        with self._errors():
            return self._client.mget([self._key(model, version, uid) for uid in user_ids])

    def _put_blobs(self, model, version, user_ids, blobs, ttl_seconds):
        px = None if ttl_seconds is None else max(1, round(ttl_seconds * 1000))
        with self._errors():
            pipe = self._client.pipeline(transaction=False)
            for uid, blob in zip(user_ids, blobs):
                pipe.set(self._key(model, version, uid), blob, px=px)
            pipe.execute()

    def _delete_version(self, model, version):
        pattern = f"{_glob_escape(self.key_prefix)}:{_glob_escape(model)}:{version}:*"
        deleted, batch = 0, []
        with self._errors():
            for key in self._client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) == _DELETE_BATCH:
                    deleted += self._client.delete(*batch)
                    batch = []
            if batch:
                deleted += self._client.delete(*batch)
        return deleted

    def close(self) -> None:
        with contextlib.suppress(redis.exceptions.RedisError):
            self._client.close()
