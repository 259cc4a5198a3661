"""Per-user cache of the candidate-independent user state (DMGIN's user tower output).

A user state is a dict of numpy arrays for one user, stored under (model, version, user id) so a
new model version never reads an old version's state. Two backends share one API
(``UserStateCache``): ``SQLiteCache`` (embedded, the default) and ``RedisCache`` (shared across
replicas). Any backend failure raises ``CacheUnavailable``; callers then compute the state.

``open_cache(url)`` picks the backend from a url:

* ``sqlite:///abs/path.db``, ``sqlite:relative/path.db`` or a plain path ending in ``.db``,
  ``.sqlite`` or ``.sqlite3`` -> ``SQLiteCache``;
* ``redis://host:port/db`` (or ``rediss://`` for TLS) -> ``RedisCache``;
* ``""``, ``"none"`` or None -> None (caching disabled).
"""
from __future__ import annotations

from tfrec.cache.base import CacheUnavailable, UserStateCache
from tfrec.cache.codec import decode_state, encode_state
from tfrec.cache.redis import RedisCache
from tfrec.cache.sqlite import SQLiteCache

__all__ = [
    "CacheUnavailable",
    "RedisCache",
    "SQLiteCache",
    "UserStateCache",
    "decode_state",
    "encode_state",
    "open_cache",
]

_ACCEPTED = (
    "'sqlite:///abs/path.db', 'sqlite:relative/path.db', a path ending in .db/.sqlite/.sqlite3, "
    "'redis://host:port/db' (or rediss://), or '' / 'none' to disable the cache"
)
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def open_cache(url: str | None, ttl_seconds: float | None = None) -> UserStateCache | None:
    """The cache that ``url`` names (see the module docstring), or None when it names none."""
    if url is None or url.strip().lower() in ("", "none"):
        return None
    text = url.strip()
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    if scheme in ("redis", "rediss") and text[len(scheme):].startswith("://"):
        return RedisCache(text, ttl_seconds=ttl_seconds)
    if scheme == "sqlite":
        path = text[len("sqlite:"):]
        if path.startswith("//"):  # sqlite://<no host>/abs/path
            path = path[2:]
            if not path.startswith("/"):
                raise ValueError(f"unsupported cache url {url!r}: a sqlite url takes no host; "
                                 f"accepted: {_ACCEPTED}")
        if not path:
            raise ValueError(f"unsupported cache url {url!r}: no database path; "
                             f"accepted: {_ACCEPTED}")
        return SQLiteCache(path, ttl_seconds=ttl_seconds)
    if "://" not in text and text.lower().endswith(_SQLITE_SUFFIXES):
        return SQLiteCache(text, ttl_seconds=ttl_seconds)
    raise ValueError(f"unsupported cache url {url!r}; accepted: {_ACCEPTED}")
