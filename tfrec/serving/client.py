"""The serving client: user state from the cache (or ``user_tower`` on a miss), then ``score``.

Talks to any server with TF Serving's gRPC API — real ``tensorflow_model_server`` in production,
``tfrec serve`` locally — through the stock ``PredictionServiceStub`` / ``ModelServiceStub``.

``score(user_id, user_history, candidates)``:

1. Resolve the model version to use: the pinned ``version``, the version a ``version_label``
   names (``GetModelMetadata``), or the latest available one (``GetModelStatus``), re-checked
   every ``version_refresh_seconds``.
2. Read the user's state from the cache under ``(model, version, user_id)``. On a miss, call the
   ``user_tower`` signature of *that* version and write the state back (with the cache's TTL).
   A model trained with user vectors (``spec.user_vector_dim`` D > 0) gets the user's vector from
   the client's ``user_vectors`` (``tfrec.data.user_vectors.UserVectors``): the slice in force at
   the request time (last boundary ``<=`` it; zeros when none or an unknown user), exactly the
   training data's join. ``served_user_vector_dim`` reads D off the served ``user_tower``.
3. Call the ``score`` signature of that same version with the state and the candidates.

The cache is an optimisation, never a dependency: when it is down (``CacheUnavailable`` or any
other backend error) the client logs it once, computes the state, and keeps answering; it logs
again when the cache is back. The client refreshes the version, recomputes the state and retries
once when the version disappears between the calls (NOT_FOUND, from ``user_tower`` too: the latest
version resolved a moment ago may be unloaded already), or when the cached state belongs to another
export of the same version or holds NaN, inf or values beyond +-1e15 (the ``score`` graph's state
checks fail with INVALID_ARGUMENT "user state ...").
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
import weakref
from typing import Dict, Mapping, Optional, Sequence, Tuple

import grpc
import numpy as np

from tfrec.data import spec as spec_lib
from tfrec.export.saved_model import STATE_CHECK_PREFIX
from tfrec.serving.requests import context_features, from_tensor_proto, predict_request, user_features

log = logging.getLogger("tfrec.serving.client")

AVAILABLE = 30  # ModelVersionStatus.State.AVAILABLE


def _connectivity_watcher(client_ref):
    """A ``channel.subscribe`` callback recording the state on the client, holding it weakly."""
    def watch(state) -> None:
        client = client_ref()
        if client is not None:
            client.connectivity = state  # a grpc.ChannelConnectivity
    return watch


def _close_channel(channel, watcher) -> None:
    """Unsubscribes ``watcher`` and closes ``channel`` once gRPC's watcher thread has stopped: it polls
    every 0.2 s and raises if the channel is closed (or collected) under it."""
    channel.unsubscribe(watcher)
    state = getattr(channel, "_connectivity_state", None)
    deadline = time.monotonic() + 1.0
    while getattr(state, "polling", False) and time.monotonic() < deadline:
        time.sleep(0.01)
    channel.close()


class ServingClient:
    """One model on one server, with an optional user-state cache.

    Args:
      target: ``host:port`` of the gRPC server.
      model_name: the served model name (e.g. ``dmgin``).
      cache: a ``tfrec.cache.UserStateCache`` or None (always compute).
      version: pin one version (rollback / A-B); default: the latest available.
      version_label: or pin a version label from the server's model config.
      timeout: per-RPC deadline in seconds.
      max_history_length: keep the most recent this many behaviors (the model's
        ``max_history_length``); default: send the whole history.
      cache_ttl_seconds: TTL of the states this client writes (default: the cache's own).
      version_refresh_seconds: how long a resolved latest version is trusted.
      max_message_bytes: largest response accepted.
      spec: the FeatureSpec of the served data (its user / context / behavior features); default:
        the default schema (``user_segment`` only, plus ``user_vectors``' width when given).
      reconnect_backoff_ms: (first, most) milliseconds between reconnection attempts to a server
        that went away; while disconnected, requests fail at once with UNAVAILABLE.
      user_vectors: the ``UserVectors`` the served model reads (required when
        ``spec.user_vector_dim`` D > 0; its D must equal that). Each ``user_tower`` request gets the
        user's vector of the last slice whose boundary is ``<=`` the request time.

    Raises:
      ValueError: the spec reads user vectors and none are given, or their widths differ.
    """

    def __init__(self, target: str, model_name: str, cache=None, version: Optional[int] = None,
                 version_label: Optional[str] = None, timeout: float = 10.0,
                 max_history_length: Optional[int] = None, cache_ttl_seconds: Optional[float] = None,
                 version_refresh_seconds: float = 2.0, max_message_bytes: int = 256 << 20, spec=None,
                 user_vectors=None, reconnect_backoff_ms: Tuple[int, int] = (100, 1000)):
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        dim = spec.user_vector_dim if spec is not None else 0
        if dim and user_vectors is None:
            raise ValueError(f"spec.user_vector_dim={dim}: the served model reads user vectors; pass "
                             "user_vectors=UserVectors.load(path) (zeros would silently stand in for them)")
        if user_vectors is not None and spec is not None and user_vectors.dim != dim:
            raise ValueError(f"user_vectors have D={user_vectors.dim} but spec.user_vector_dim={dim}; pass the "
                             "file the model was trained with")
        self.target, self.model_name, self.cache = target, model_name, cache
        self.pinned_version, self.version_label = version, version_label
        self.timeout, self.max_history_length, self.spec = timeout, max_history_length, spec
        self.user_vectors = None
        self.use_user_vectors(user_vectors)
        self.cache_ttl_seconds, self.version_refresh_seconds = cache_ttl_seconds, version_refresh_seconds
        self.channel = grpc.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # gRPC's default reconnect backoff (1 s, x1.6, up to 120 s) grows with the outage
            ("grpc.initial_reconnect_backoff_ms", reconnect_backoff_ms[0]),
            ("grpc.min_reconnect_backoff_ms", reconnect_backoff_ms[0]),
            ("grpc.max_reconnect_backoff_ms", reconnect_backoff_ms[1])])
        # Watching the connectivity keeps the channel reconnecting in the background with the backoff
        # above; unwatched, a channel that saw UNAVAILABLE reconnected ~3 s after the server was back
        # (the backoff options alone change nothing). The watcher holds the client weakly, so a client
        # dropped without close() is still collected (and its __del__ stops the watch).
        self.connectivity = None
        self._closed = False
        self._watcher = _connectivity_watcher(weakref.ref(self))
        self.channel.subscribe(self._watcher)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self._version: Optional[Tuple[int, float]] = None
        self._lock = threading.Lock()
        self._cache_ok = True
        self.stats = {"cache_hits": 0, "cache_misses": 0, "cache_errors": 0, "user_tower_calls": 0,
                      "score_calls": 0, "retries": 0}

    # -- plumbing -------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _close_channel(self.channel, self._watcher)
        if self.cache is not None:
            self.cache.close()

    def __del__(self):
        # Dropped without close(): the channel is closed once its watcher has stopped, off this thread.
        if getattr(self, "_closed", True) or sys.is_finalizing():  # at exit no thread may start; nothing leaks
            return
        try:
            threading.Thread(target=_close_channel, args=(self.channel, self._watcher), daemon=True).start()
        except RuntimeError:  # interpreter shutting down
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def predict(self, signature_name: str, inputs: Mapping[str, np.ndarray],
                version: Optional[int] = None) -> Tuple[Dict[str, np.ndarray], int]:
        """One ``Predict`` call; returns the outputs and the version that answered."""
        label = None if version is not None else self.version_label
        request = predict_request(self.model_name, inputs, signature_name, version=version, version_label=label)
        response = self.predictions.Predict(request, timeout=self.timeout)
        outputs = {k: from_tensor_proto(v) for k, v in response.outputs.items()}
        return outputs, response.model_spec.version.value

    def served_version(self, refresh: bool = False) -> int:
        """The version requests go to (see the module docstring)."""
        if self.pinned_version is not None:
            return int(self.pinned_version)
        with self._lock:
            cached = self._version
        if cached and not refresh and time.monotonic() - cached[1] < self.version_refresh_seconds:
            return cached[0]
        if self.version_label:
            from tensorflow_serving.apis import get_model_metadata_pb2
            request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
            request.model_spec.name = self.model_name
            request.model_spec.version_label = self.version_label
            version = self.predictions.GetModelMetadata(request, timeout=self.timeout).model_spec.version.value
        else:
            from tensorflow_serving.apis import get_model_status_pb2
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = self.model_name
            status = self.models.GetModelStatus(request, timeout=self.timeout)
            available = [s.version for s in status.model_version_status if s.state == AVAILABLE]
            if not available:
                raise LookupError(f"model {self.model_name} has no available version on {self.target}")
            version = max(available)
        with self._lock:
            self._version = (int(version), time.monotonic())
        return int(version)

    def use_user_vectors(self, user_vectors) -> None:
        """From now on, ``user_tower`` requests carry ``user_vectors``' vectors (a ``UserVectors``;
        None: none); ``spec.user_vector_dim`` becomes their D (the default schema's spec if none)."""
        dim = user_vectors.dim if user_vectors is not None else 0
        if dim or (self.spec is not None and self.spec.user_vector_dim):
            spec = self.spec if self.spec is not None else spec_lib.FeatureSpec(n_items=1)
            self.spec = dataclasses.replace(spec, user_vector_dim=dim)
        self.user_vectors = user_vectors

    def served_user_vector_dim(self, version: Optional[int] = None) -> int:
        """D of the ``user_vector`` ``[B, D]`` input of the served ``user_tower`` (0: it takes none),
        read from ``GetModelMetadata``'s ``signature_def`` (TF Serving answers it too)."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        version = self.served_version() if version is None else int(version)
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = self.model_name
        request.model_spec.version.value = version
        response = self.predictions.GetModelMetadata(request, timeout=self.timeout)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        if "user_tower" not in signatures.signature_def:
            raise LookupError(f"{self.model_name} version {version} on {self.target} has no user_tower signature")
        inputs = signatures.signature_def["user_tower"].inputs
        if spec_lib.USER_VECTOR not in inputs:
            return 0
        return int(inputs[spec_lib.USER_VECTOR].tensor_shape.dim[-1].size)

    # -- cache, never fatal ----------------------------------------------------------------------
    def _cache_call(self, what: str, *args):
        """``cache.<what>(*args)``; None without a cache or when the backend fails (logged once)."""
        if self.cache is None:
            return None
        try:
            result = getattr(self.cache, what)(*args)
        except Exception as err:  # CacheUnavailable or anything else the backend throws
            self._count("cache_errors")
            if self._cache_ok:
                log.warning("user-state cache %s failed (%s: %s); computing user state with user_tower until it "
                            "is back", what, type(err).__name__, err)
            self._cache_ok = False
            return None
        if not self._cache_ok:
            log.warning("user-state cache is back")
            self._cache_ok = True
        return result

    # -- the serving path -----------------------------------------------------------------------
    def features(self, user_id: int, user_history: Optional[Mapping], profile=None,
                 request_timestamp: Optional[int] = None) -> Dict[str, np.ndarray]:
        """``user_tower`` inputs; ``profile`` = the user features (a mapping, or the default schema's
        ``user_segment`` as an int); with ``user_vectors``, the user's vector at the request time, or
        the newest slice when no request time is given (a request without a time is "now", which no
        slice boundary exceeds; the default history cut, the last behavior + 1, would pick an older
        slice for a user idle since then)."""
        out = user_features(user_id, user_history or {}, request_timestamp, self.max_history_length,
                            profile=profile, spec=self.spec)
        if self.user_vectors is not None:
            at = out["request_timestamp"] if request_timestamp is not None else \
                np.maximum(out["request_timestamp"], self.user_vectors.boundaries[-1])
            out[spec_lib.USER_VECTOR] = self.user_vectors.lookup(out["user_id"], at)
        return out

    def user_state(self, user_id: int, user_history: Optional[Mapping] = None, profile=None,
                   request_timestamp: Optional[int] = None, version: Optional[int] = None,
                   use_cache: bool = True) -> Tuple[Dict[str, np.ndarray], int, str]:
        """The user's state (batch of one), its version, and where it came from ("cache"/"user_tower")."""
        version = self.served_version() if version is None else version
        if use_cache and self.cache is not None:
            state = self._cache_call("get", self.model_name, version, int(user_id))
            if state is not None:
                self._count("cache_hits")
                return {k: v[None] for k, v in state.items()}, version, "cache"
            self._count("cache_misses")
        self._count("user_tower_calls")
        state, version = self.predict(
            "user_tower", self.features(user_id, user_history, profile, request_timestamp), version)
        self._cache_call("put", self.model_name, version, int(user_id), {k: v[0] for k, v in state.items()},
                         self.cache_ttl_seconds)
        return state, version, "user_tower"

    def score(self, user_id: int, user_history: Optional[Mapping], candidates: Sequence[int], profile=None,
              request_timestamp: Optional[int] = None, context: Optional[Mapping] = None) -> np.ndarray:
        """Click probabilities ``[C]`` of ``candidates`` for one user (and the request's context features)."""
        return self.score_with_source(user_id, user_history, candidates, profile, request_timestamp, context)[0]

    def score_with_source(self, user_id, user_history, candidates, profile=None, request_timestamp=None,
                          context=None):
        """``score`` plus (version, "cache" | "user_tower")."""
        candidates = np.asarray(candidates, np.int64).reshape(1, -1)
        context = context_features(context, self.spec)
        try:  # a NOT_FOUND from user_tower too: the resolved latest version was unloaded since
            state, version, source = self.user_state(user_id, user_history, profile, request_timestamp)
            return self._score(state, version, candidates, context), (version, source)
        except grpc.RpcError as err:
            # NOT_FOUND: the version left; INVALID_ARGUMENT "user state ...": the score graph refused the
            # state (another export's fingerprint, or NaN / inf from a corrupt cache entry).
            stale = err.code() == grpc.StatusCode.NOT_FOUND or (
                err.code() == grpc.StatusCode.INVALID_ARGUMENT and STATE_CHECK_PREFIX in (err.details() or ""))
            if not stale:
                raise
            log.info("%s no longer serves the version or state this request used (%s); refreshing the version "
                     "and recomputing", self.model_name, err.code().name)
            self._count("retries")
        state, version, source = self.user_state(user_id, user_history, profile, request_timestamp,
                                                 version=self.served_version(refresh=True), use_cache=False)
        return self._score(state, version, candidates, context), (version, source)

    def _score(self, state, version, candidates, context):
        self._count("score_calls")
        outputs, _ = self.predict("score", {**state, "candidate_item_id": candidates, **context}, version)
        # TF Serving's batching may pad the candidate axis: keep the C columns sent.
        return outputs["probabilities"][0, :candidates.shape[1]]
