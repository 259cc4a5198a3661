"""The backend-independent half of the user-state cache.

``UserStateCache`` implements the public API once: argument validation, TTL defaults, splitting
batched states into per-user rows, encoding and decoding (``tfrec.cache.codec``) and the
hit/miss counters. A backend only moves bytes, through four primitives:

* ``_get_blobs(model, version, user_ids) -> list[bytes | None]`` (one per id, in order),
* ``_put_blobs(model, version, user_ids, blobs, ttl_seconds) -> None``,
* ``_delete_version(model, version) -> int``,
* ``close()``.

and raises ``CacheUnavailable`` when its store fails, so that callers can always fall back to
computing the state. Entries are keyed by (model, version, user id): a new model version never
reads a state written by another.
"""
from __future__ import annotations

import abc
import logging
import numbers
import threading
from collections.abc import Mapping, Sequence

import numpy as np

from tfrec.cache.codec import decode_state, encode_state

logger = logging.getLogger(__name__)

State = dict[str, np.ndarray]
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class CacheUnavailable(RuntimeError):
    """The backend cannot be reached or failed; callers fall back to computing."""


def check_model(model) -> str:
    if not isinstance(model, str) or not model or ":" in model:
        raise ValueError(f"model must be a non-empty string without ':', got {model!r}")
    return model


def check_int(name: str, value) -> int:
    """Accepts Python and numpy integers (not bools) in the int64 range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{name} must fit in int64, got {value}")
    return value


def check_ttl(name: str, ttl_seconds) -> float | None:
    if ttl_seconds is None:
        return None
    number = isinstance(ttl_seconds, numbers.Real) and not isinstance(ttl_seconds, bool)
    if not number or not ttl_seconds > 0:
        raise ValueError(f"{name} must be a positive number of seconds or None, "
                         f"got {ttl_seconds!r}")
    return float(ttl_seconds)


class UserStateCache(abc.ABC):
    """A key-value store of per-user states, keyed by (model, version, user id).

    Attributes:
      ttl_seconds: the default time to live of a put (None: entries never expire).
      hits, misses: how many looked-up users were found / not found (expired and undecodable
        entries count as misses).
      url: where the entries live, e.g. ``sqlite:///var/cache/tfrec.db`` (no password).
    """

    url: str = ""

    def __init__(self, ttl_seconds: float | None = None):
        self.ttl_seconds = check_ttl("ttl_seconds", ttl_seconds)
        self.hits = 0
        self.misses = 0
        self._counter_lock = threading.Lock()

    # -- public API ------------------------------------------------------------------------------

    def get(self, model: str, version: int, user_id: int) -> State | None:
        """The state of one user, or None on a miss."""
        return self.get_many(model, version, [user_id])[0]

    def get_many(self, model: str, version: int, user_ids: Sequence[int]) -> list[State | None]:
        """One state (or None) per id in ``user_ids``, in the same order."""
        model, version, user_ids = self._check_key(model, version, user_ids)
        if not user_ids:
            return []
        states = [self._decode(blob, model, version, uid)
                  for uid, blob in zip(user_ids, self._get_blobs(model, version, user_ids))]
        found = sum(state is not None for state in states)
        with self._counter_lock:
            self.hits += found
            self.misses += len(states) - found
        return states

    def put(self, model: str, version: int, user_id: int, state: Mapping[str, np.ndarray],
            ttl_seconds: float | None = None) -> None:
        """Stores one user's state (arrays without a batch dimension)."""
        model, version, user_ids = self._check_key(model, version, [user_id])
        blob = encode_state(state)
        self._put_blobs(model, version, user_ids, [blob], self._ttl(ttl_seconds))

    def put_many(self, model: str, version: int, user_ids: Sequence[int],
                 states: Mapping[str, np.ndarray], ttl_seconds: float | None = None) -> int:
        """Stores a batch: row ``i`` of every array in ``states`` belongs to ``user_ids[i]``.

        Returns the number of entries written.
        """
        model, version, user_ids = self._check_key(model, version, user_ids)
        ttl = self._ttl(ttl_seconds)
        batch = split_batch(states, len(user_ids))
        if not user_ids:
            return 0
        self._put_blobs(model, version, user_ids, [encode_state(row) for row in batch], ttl)
        return len(user_ids)

    def delete_version(self, model: str, version: int) -> int:
        """Drops every entry of one model version; returns how many were deleted."""
        return self._delete_version(check_model(model), check_int("version", version))

    @abc.abstractmethod
    def close(self) -> None:
        """Releases connections. The cache must not be used afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        return f"{type(self).__name__}({self.url!r}, ttl_seconds={self.ttl_seconds})"

    # -- backend primitives ----------------------------------------------------------------------

    @abc.abstractmethod
    def _get_blobs(self, model: str, version: int, user_ids: list[int]) -> list[bytes | None]:
        """The stored bytes per id (None: absent or expired). Raises CacheUnavailable."""

    @abc.abstractmethod
    def _put_blobs(self, model: str, version: int, user_ids: list[int], blobs: list[bytes],
                   ttl_seconds: float | None) -> None:
        """Writes (overwrites) one blob per id, expiring after ``ttl_seconds`` unless None."""

    @abc.abstractmethod
    def _delete_version(self, model: str, version: int) -> int:
        """Deletes every entry of (model, version); returns the count."""

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _check_key(model, version, user_ids):
        if isinstance(user_ids, (str, bytes)) or not isinstance(user_ids, (Sequence, np.ndarray)):
            raise ValueError(
                f"user_ids must be a sequence of integers, got {type(user_ids).__name__}"
            )
        ids = [check_int("user_id", uid) for uid in user_ids]
        return check_model(model), check_int("version", version), ids

    def _ttl(self, ttl_seconds):
        ttl = check_ttl("ttl_seconds", ttl_seconds)
        return self.ttl_seconds if ttl is None else ttl

    def _decode(self, blob, model, version, user_id) -> State | None:
        if blob is None:
            return None
        try:
            return decode_state(blob)
        except ValueError as err:
            # A bad entry is a miss: the caller recomputes and its put overwrites the entry.
            logger.warning("%s: undecodable entry %s:%s:%s read as a miss: %s",
                           self.url, model, version, user_id, err)
            return None


def split_batch(states: Mapping[str, np.ndarray], n: int) -> list[State]:
    """Splits batched arrays (leading dimension ``n``) into ``n`` per-user state dicts."""
    if not isinstance(states, Mapping) or not states:
        raise ValueError("states must be a non-empty mapping of name -> batched array")
    arrays = {}
    for key, value in states.items():
        array = np.asarray(value)
        if array.ndim == 0 or array.shape[0] != n:
            raise ValueError(
                f"states[{key!r}] has shape {array.shape}; expected a leading dimension of "
                f"len(user_ids) = {n}"
            )
        arrays[key] = array
    return [{key: array[i] for key, array in arrays.items()} for i in range(n)]
