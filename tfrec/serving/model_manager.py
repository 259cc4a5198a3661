"""Which model versions are loaded: discovery, version policy, load-before-unload, warmup.

The local server's equivalent of TF Serving's ``ServerCore`` + ``AspiredVersionsManager``:

* Models come from a base path (every sub-directory that holds numeric version directories, or
  one named model) or from a ``ModelServerConfig`` text proto (``serving/models.config``).
* Each poll lists ``<base_path>/<version>/`` directories and applies the model's version policy
  (``latest { num_versions }`` — default 1 —, ``all {}`` or ``specific { versions }``) to get the
  *aspired* versions.
* New aspired versions are loaded (``tf.saved_model.load``) and warmed up with the requests in
  ``assets.extra/tf_serving_warmup_requests`` *before* anything is unloaded; a version that is no
  longer aspired is unloaded only once some aspired version is available (TF Serving's
  availability-preserving policy). A version that fails to load or warm up is reported as
  ``END`` with its error by ``GetModelStatus`` and leaves the serving versions untouched; it is
  retried with backoff (``max_load_retries``, like TF Serving) and whenever anything in its
  directory changes, so a version copied in with a non-atomic ``cp -r`` is served once the copy
  completes. A new or changed directory is loaded only once it has stopped changing
  (``settle_seconds``). With a ``root``, every path is confined to it (``confine_tree``).
* ``version_labels`` map a label to a version; a label only resolves to an available version.

Errors are ``ServingError`` carrying the gRPC status code TF Serving uses for the same case.
"""
from __future__ import annotations

import collections
import enum
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf

from tfrec.export.saved_model import read_warmup_requests
from tfrec.tf_errors import clean_tf_message

log = logging.getLogger("tfrec.serving")

DEFAULT_SIGNATURE = "serving_default"
_GRPC_CODE = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request or load failure with the gRPC status code TF Serving returns for it."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class State(enum.Enum):
    """``ModelVersionStatus.State`` values (get_model_status.proto)."""
    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclass
class ModelConfig:
    """One served model: TF Serving's ``ModelConfig`` fields that the local server honours."""
    name: str
    base_path: Path
    policy: str = "latest"              # latest | all | specific
    num_versions: int = 1               # for latest
    versions: tuple = ()                # for specific
    labels: Dict[str, int] = field(default_factory=dict)

    def aspired(self, on_disk: Sequence[int]) -> List[int]:
        on_disk = sorted(on_disk)
        if self.policy == "all":
            return on_disk
        if self.policy == "specific":
            return [v for v in on_disk if v in set(self.versions)]
        return on_disk[-self.num_versions:] if on_disk else []


def configs_from_base_path(base_path: os.PathLike, model_name: Optional[str] = None) -> List[ModelConfig]:
    """``--model-base-path``: with ``model_name`` the path is that model's directory (TF Serving's
    ``--model_name``/``--model_base_path``); without it every sub-directory holding numeric
    version directories is a model named after the sub-directory."""
    base = Path(base_path).resolve()
    if model_name:
        return [ModelConfig(model_name, base)]
    if not base.is_dir():
        raise FileNotFoundError(f"--model-base-path {base} is not a directory; export a model first "
                                "(tfrec export --export-base {base})")
    models = [ModelConfig(p.name, p) for p in sorted(base.iterdir())
              if p.is_dir() and not p.name.startswith(".") and any(c.name.isdigit() for c in p.iterdir())]
    if not models:
        raise FileNotFoundError(f"no models under {base}: expected <model>/<version>/saved_model.pb "
                                "(tfrec export writes that layout)")
    return models


class OutsideRootError(ValueError):
    """A model path that resolves outside the server's model root."""


def confine(path: os.PathLike, root: Path, what: str) -> Path:
    """``path`` resolved (symlinks and ``..`` included); raises ``OutsideRootError`` unless it lies
    inside ``root`` (itself resolved)."""
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(root):
        raise OutsideRootError(
            f"{what}: {path} resolves to {resolved}, outside the model root {root}; serve models from "
            "inside the root (or start tfrec serve with --allow-models-outside-root, which lets any caller "
            "of the ModelService load any directory the server can read)")
    return resolved


def configs_from_proto(config, rebase: Optional[os.PathLike] = None,
                       root: Optional[os.PathLike] = None) -> List[ModelConfig]:
    """A ``ModelServerConfig`` proto -> ``ModelConfig`` list. ``rebase`` replaces each base path's
    parent directory (``serving/models.config`` names container paths such as ``/models/dmgin``).
    With ``root``, a base path resolving outside it raises ``OutsideRootError`` (a ``ValueError``)."""
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError("the model config file must use model_config_list (custom_model_config is not supported)")
    out = []
    for mc in config.model_config_list.config:
        if not mc.name or not mc.base_path:
            raise ValueError(f"model config entry {mc.name!r} needs both name and base_path")
        if mc.model_platform not in ("", "tensorflow"):
            raise ValueError(f"model {mc.name}: model_platform {mc.model_platform!r} is not supported; use tensorflow")
        base = Path(mc.base_path)
        if rebase is not None:
            base = Path(rebase) / base.name
        policy = mc.model_version_policy.WhichOneof("policy_choice") or "latest"
        kw = {}
        if policy == "latest":
            kw["num_versions"] = mc.model_version_policy.latest.num_versions or 1
        elif policy == "specific":
            kw["versions"] = tuple(int(v) for v in mc.model_version_policy.specific.versions)
            if not kw["versions"]:
                raise ValueError(f"model {mc.name}: specific version policy lists no versions")
        if root is not None:
            confine(base, Path(root).resolve(), f"model {mc.name} base_path")
        out.append(ModelConfig(mc.name, base.resolve(), policy, labels=dict(mc.version_labels), **kw))
    if len({c.name for c in out}) != len(out):
        raise ValueError("the model config file names a model more than once")
    return out


def read_config_file(path: os.PathLike, rebase: Optional[os.PathLike] = None,
                     root: Optional[os.PathLike] = None) -> List[ModelConfig]:
    """Parses a ``ModelServerConfig`` text proto file (TF Serving's ``--model_config_file``)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    text = Path(path).read_text()
    try:
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as err:
        raise ValueError(f"{path}: not a ModelServerConfig text proto: {err}") from None
    return configs_from_proto(config, rebase, root)


class Servable:
    """One loaded SavedModel version and its signatures."""

    def __init__(self, name: str, version: int, path: Path):
        from tensorflow.core.protobuf import saved_model_pb2

        self.name, self.version, self.path = name, version, path
        proto = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
        self.signature_defs = dict(proto.meta_graphs[0].signature_def)
        self.loaded = tf.saved_model.load(str(path))
        self.signatures = dict(self.loaded.signatures)
        self.input_specs = {}
        for key, fn in self.signatures.items():
            _, kwargs = fn.structured_input_signature
            # name -> (numpy dtype, TF dtype name, dims with None for "any"): checked per request
            # on the numpy arrays, without TensorFlow's Python shape objects.
            self.input_specs[key] = {name: (spec.dtype.as_numpy_dtype, spec.dtype.name, tuple(spec.shape.as_list()))
                                     for name, spec in sorted(kwargs.items())}

    def predict(self, signature_name: str, inputs: Mapping, output_filter: Sequence[str] = ()) -> Dict[str, np.ndarray]:
        """Runs one signature. ``inputs`` are TensorProtos or numpy arrays; validates like TF Serving."""
        key = signature_name or DEFAULT_SIGNATURE
        if key not in self.signatures:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
        specs = self.input_specs[key]
        if set(inputs) != set(specs):
            sent, want = sorted(inputs), sorted(specs)
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, (
                f"input size does not match signature: {len(sent)}!={len(want)} len({{{','.join(sent)}}}) != "
                f"len({{{','.join(want)}}}). Sent extra: {{{','.join(sorted(set(sent) - set(want)))}}}. "
                f"Missing but required: {{{','.join(sorted(set(want) - set(sent)))}}}."))
        outputs = self.signature_defs[key].outputs
        for alias in output_filter:
            if alias not in outputs:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, (
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                    f"{{{','.join(sorted(outputs))}}}."))
        tensors = {}
        for i, (name, (np_dtype, dtype_name, dims)) in enumerate(specs.items()):
            value = inputs[name]
            try:
                array = value if isinstance(value, np.ndarray) else tf.make_ndarray(value)
            except Exception as err:  # malformed TensorProto
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f'input "{name}": malformed tensor: {err}') from None
            if array.dtype != np_dtype:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, (
                    f"Expects arg[{i}] to be {dtype_name} but {tf.as_dtype(array.dtype).name} is provided "
                    f'(input "{name}")'))
            if array.ndim != len(dims) or any(d is not None and d != n for d, n in zip(dims, array.shape)):
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, (
                    f'input "{name}" has shape {list(array.shape)} but signature "{key}" expects '
                    f"{[-1 if d is None else d for d in dims]}"))
            tensors[name] = array
        batches = {name: a.shape[0] for name, a in tensors.items() if a.ndim}
        if len(set(batches.values())) > 1:  # name the odd one out, not whichever input came first
            batch = collections.Counter(batches.values()).most_common(1)[0][0]
            name = next(n for n, b in batches.items() if b != batch)
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, (
                f'input "{name}" has 0th-dimension size {batches[name]} but the other inputs have {batch}; '
                "all inputs must have the same batch size"))
        tensors = {name: tf.constant(a) for name, a in tensors.items()}
        try:
            result = self.signatures[key](**tensors)
        except tf.errors.OpError as err:
            raise ServingError(_GRPC_CODE.get(err.error_code, grpc.StatusCode.UNKNOWN),
                               clean_tf_message(err.message)) from None
        except UnicodeDecodeError as err:  # TF's message quoted undecodable request bytes
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, clean_tf_message(
                err.object.decode("utf-8", "backslashreplace") if isinstance(err.object, bytes) else str(err))) from None
        wanted = list(output_filter) or list(result)
        return {k: result[k].numpy() for k in wanted}

    def warmup(self) -> int:
        """Replays ``assets.extra/tf_serving_warmup_requests``; returns the number of requests."""
        requests = read_warmup_requests(self.path)
        for request in requests:
            self.predict(request.model_spec.signature_name, request.inputs, request.output_filter)
        return len(requests)


@dataclass
class VersionStatus:
    state: State
    error: Optional[ServingError] = None
    stamp: tuple = ()       # the version directory's ``tree_stamp`` at the failed attempt
    attempts: int = 0       # failed loads since the directory last changed
    retry_at: float = 0.0   # time.monotonic() of the next retry (inf: retries spent)


def _walk(path: Path):
    """Every entry under ``path`` (``os.walk`` following symlinked directories, each real directory
    once, so a link loop ends)."""
    seen = set()
    for parent, dirs, names in os.walk(path, followlinks=True):
        real = os.path.realpath(parent)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        for entry in dirs + names:
            yield os.path.join(parent, entry)


def tree_stamp(path: Path) -> tuple:
    """(entries, bytes, newest change) of everything under a version directory (symlinked
    directories followed), the newest change being the latest mtime or ctime (a ``cp -a`` keeping
    old mtimes, a ``chmod`` fixing a permission count too). It changes while a ``cp -r`` is still
    writing the directory, unlike ``saved_model.pb`` alone (copied first)."""
    entries = size = 0
    newest = 0.0
    for entry in _walk(path):
        try:
            st = os.stat(entry)
        except OSError:  # removed while we walk, or a dangling link: the next poll sees the change
            continue
        entries, size, newest = entries + 1, size + st.st_size, max(newest, st.st_mtime, st.st_ctime)
    return entries, size, newest


def confine_tree(path: Path, root: Path, what: str) -> Path:
    """``confine`` for a version directory and everything in it, through symlinked directories too
    (a file or directory linked out of the root is refused); returns the resolved directory."""
    resolved = confine(path, root, what)
    for entry in _walk(resolved):
        confine(entry, root, what)
    return resolved


class ModelManager:
    """Keeps the aspired versions of every configured model loaded.

    Args:
      configs: the models.
      poll_seconds: how often the version directories are listed (TF Serving's
        ``--file_system_poll_wait_seconds``); 0 disables the background poll (``poll`` by hand).
      warmup: replay each version's warmup requests before it becomes available.
      max_load_retries: a version that fails to load is tried again up to this many times
        (TF Serving's ``--max_num_load_retries``), after ``retry_seconds``, then twice that, ...
        (capped at 60 s); and, without waiting for the backoff, once its directory has changed
        (files, sizes, mtimes or ctimes: an operator's ``cp -r`` finishing) and settled, which also
        restarts the count. The serving versions keep serving meanwhile.
      retry_seconds: the first retry interval (TF Serving's ``--load_retry_interval_micros``).
      root: when set, every base path, version directory and file in it must resolve (symlinks
        resolved) inside it; others are refused (``confine``) and never retried.
      settle_seconds: a version directory is loaded only once its ``tree_stamp`` has not changed
        for this long (measured on this process's monotonic clock, not against file times), so a
        copy still being written is not loaded half (at best without its warmup file) and then
        again; the directories of a model just configured (at start, or by a reload that adds it)
        are taken as they are.
    """

    def __init__(self, configs: Sequence[ModelConfig], poll_seconds: float = 1.0, warmup: bool = True,
                 max_load_retries: int = 5, retry_seconds: float = 1.0, root: Optional[os.PathLike] = None,
                 settle_seconds: float = 1.0):
        self._lock = threading.RLock()
        self._poll_lock = threading.Lock()
        self.configs: Dict[str, ModelConfig] = {}
        self.servables: Dict[str, Dict[int, Servable]] = {}
        self.status: Dict[str, Dict[int, VersionStatus]] = {}
        self.poll_seconds = poll_seconds
        self.warmup = warmup
        self.max_load_retries, self.retry_seconds = max_load_retries, retry_seconds
        self.root = Path(root).resolve() if root is not None else None
        self.settle_seconds = settle_seconds
        self._fresh: set = set()  # models not synced yet: their directories are taken as they are
        self._seen: Dict[tuple, tuple] = {}  # (model, version) -> (tree_stamp, monotonic time first seen)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.set_configs(configs)

    # -- configuration ------------------------------------------------------------------------
    def set_configs(self, configs: Sequence[ModelConfig]) -> None:
        """Replaces the model list (``HandleReloadConfigRequest``); the next poll applies it."""
        with self._lock:
            self._fresh |= {c.name for c in configs if c.name not in self.configs
                            or self.configs[c.name].base_path != c.base_path}
            self.configs = {c.name: c for c in configs}
            for name in self.configs:
                self.servables.setdefault(name, {})
                self.status.setdefault(name, {})

    # -- polling -----------------------------------------------------------------------------
    def start(self) -> "ModelManager":
        self.poll()
        if self.poll_seconds > 0:
            self._thread = threading.Thread(target=self._loop, name="tfrec-version-poll", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _loop(self):
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:  # never let the poll thread die
                log.exception("version poll failed")

    def poll(self) -> None:
        """One discovery pass over every model (also drops models removed from the config)."""
        with self._poll_lock:
            with self._lock:
                configs = dict(self.configs)
                removed = [n for n in self.servables if n not in configs]
            for name in removed:
                with self._lock:
                    gone = self.servables.pop(name, {})
                    self.status.pop(name, None)
                for version in gone:
                    log.info("unloaded %s version %d (model removed from the config)", name, version)
            for config in configs.values():
                try:  # one model's unreadable directory never stops the others' polls
                    self._sync(config)
                except Exception:
                    log.exception("polling the versions of %s failed", config.name)
                with self._lock:
                    self._fresh.discard(config.name)

    def _sync(self, config: ModelConfig) -> None:
        name = config.name
        on_disk = {}
        if config.base_path.is_dir():
            on_disk = {int(p.name): p for p in config.base_path.iterdir() if p.is_dir() and p.name.isdigit()}
        aspired = config.aspired(on_disk)
        for version in aspired:  # load first ...
            with self._lock:
                loaded = version in self.servables[name]
                status = self.status[name].get(version)
            if loaded:
                continue
            if self.root is not None and not self._inside_root(name, version, on_disk[version], status):
                continue  # refused without walking a tree outside the root
            stamp = tree_stamp(on_disk[version])
            if not self._settled(name, version, stamp):
                continue  # still being written: a later poll looks again
            if status and status.error is not None and stamp == status.stamp and time.monotonic() < status.retry_at:
                continue  # failed, unchanged since, backoff not over
            self._load(name, version, on_disk[version], status, stamp)
        with self._lock:  # ... then unload what is no longer aspired, if that keeps the model available
            available = [v for v in aspired if v in self.servables[name]]
            if available or not aspired:
                for version in [v for v in self.servables[name] if v not in aspired]:
                    self.status[name][version] = VersionStatus(State.UNLOADING)
                    del self.servables[name][version]
                    self.status[name][version] = VersionStatus(State.END)
                    log.info("unloaded %s version %d", name, version)
            for version, status in list(self.status[name].items()):  # forget failures whose directory left
                if version not in on_disk and version not in self.servables[name] and status.error:
                    del self.status[name][version]
            for key in [k for k in self._seen if k[0] == name and k[1] not in on_disk]:
                del self._seen[key]

    def _settled(self, name: str, version: int, stamp: tuple) -> bool:
        """True once ``stamp`` has not changed for ``settle_seconds`` of this process's monotonic
        clock (file times from another host's clock never enter it); a model just configured takes
        its directories as they are."""
        now = time.monotonic()
        with self._lock:
            fresh = name in self._fresh
            seen = self._seen.get((name, version))
            if seen is None or seen[0] != stamp:
                self._seen[(name, version)] = seen = (stamp, now)
                if not fresh and self.settle_seconds > 0:
                    log.info("%s version %d is new or changed: loading it once it has not changed for %g s",
                             name, version, self.settle_seconds)
        return fresh or now - seen[1] >= self.settle_seconds

    def _inside_root(self, name: str, version: int, path: Path, status: Optional[VersionStatus]) -> bool:
        """False (and the version END with INVALID_ARGUMENT, once) when its directory resolves outside
        the root: such a tree is never walked or loaded."""
        try:
            confine(path, self.root, f"{name} version {version}")
            return True
        except OutsideRootError as err:
            if status is None or status.error is None or status.error.message != str(err):
                log.error("%s version %d refused: %s", name, version, err)
                with self._lock:
                    self.status[name][version] = VersionStatus(
                        State.END, ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(err)), (), 0, float("inf"))
            return False

    def load_errors(self) -> List[tuple]:
        """(model, version, ServingError) of every configured version that ended in a failed load,
        read under the lock (``HandleReloadConfigRequest`` reports the first)."""
        with self._lock:
            return [(name, version, status.error) for name in self.configs
                    for version, status in sorted(self.status.get(name, {}).items())
                    if status.state == State.END and status.error is not None]

    def _load(self, name: str, version: int, path: Path, previous: Optional[VersionStatus], stamp: tuple) -> None:
        """Loads and warms up one version; a failure is kept with its backoff (a retry keeps showing
        the last error while it loads)."""
        failed_before = previous is not None and previous.error is not None
        attempts = previous.attempts if failed_before and previous.stamp == stamp else 0
        with self._lock:
            self.status[name][version] = VersionStatus(State.LOADING, previous.error if failed_before else None)
        started = time.perf_counter()
        try:
            if self.root is not None:
                try:
                    path = confine_tree(path, self.root, f"{name} version {version}")  # and load what was checked
                except OutsideRootError as err:
                    attempts = self.max_load_retries  # deterministic: no retry until the directory changes
                    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from None
            servable = Servable(name, version, path)
            n_warm = servable.warmup() if self.warmup else 0
        except Exception as err:  # a broken version never takes the serving ones down
            reason = clean_tf_message(err.message) if isinstance(err, tf.errors.OpError) else \
                (str(err).splitlines()[0] if str(err) else "")
            error = err if isinstance(err, ServingError) else ServingError(
                grpc.StatusCode.UNKNOWN, f"Failed to load {name} version {version} from {path}: "
                                         f"{type(err).__name__}: {reason}")
            attempts += 1
            if attempts > self.max_load_retries:
                retry_at, when = float("inf"), "no retries left; it is retried when its directory changes"
            else:
                delay = min(self.retry_seconds * 2 ** (attempts - 1), 60.0)
                retry_at, when = time.monotonic() + delay, f"retry {attempts} of {self.max_load_retries} in {delay:g} s"
            log.error("%s version %d failed to load (%s): %s", name, version, when, error.message)
            with self._lock:
                self.status[name][version] = VersionStatus(State.END, error, stamp, attempts, retry_at)
            return
        with self._lock:
            if name not in self.configs:
                return
            self.servables[name][version] = servable
            self.status[name][version] = VersionStatus(State.AVAILABLE)
        log.info("loaded %s version %d in %.1f s (%d warmup requests)", name, version,
                 time.perf_counter() - started, n_warm)

    # -- lookups -----------------------------------------------------------------------------
    def get(self, name: str, version: Optional[int] = None, label: Optional[str] = None) -> Servable:
        """The servable for a ModelSpec: latest available, a specific version or a label."""
        with self._lock:
            config = self.configs.get(name)
            servables = self.servables.get(name, {})
            if label:
                if config is None or label not in config.labels:
                    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                       f"Unrecognized servable version label: {label}")
                version = config.labels[label]
            if version is None:
                if not servables:
                    raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})")
                return servables[max(servables)]
            if version not in servables:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Servable not found for request: Specific({name}, {version})")
            return servables[version]

    def version_status(self, name: str, version: Optional[int] = None) -> Dict[int, VersionStatus]:
        with self._lock:
            states = dict(self.status.get(name, {}))
        if version is not None:
            if version not in states:
                raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {name}")
            return {version: states[version]}
        if not states:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        return states

    def wait_until_available(self, timeout: float = 60.0) -> bool:
        """True once every configured model has an available version (or False at the timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(self.servables.get(n) for n in self.configs):
                    return True
            time.sleep(0.05)
        return False
