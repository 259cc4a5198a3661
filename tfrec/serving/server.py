"""``tfrec serve``: a local server that speaks TF Serving's gRPC API over the same model layout.

This is a stand-in for TF Serving for the demo and the tests, **not** TF Serving: the
``tensorflow_model_server`` binary cannot be installed on our machines. It implements the parts of
the API our client uses, with the protos and service stubs of ``tensorflow-serving-api``:

* ``tensorflow.serving.PredictionService/Predict`` — by model name, optional ``version`` or
  ``version_label``, ``signature_name`` (empty = ``serving_default``), ``output_filter``.
* ``tensorflow.serving.PredictionService/GetModelMetadata`` — ``signature_def`` (the SavedModel's
  own SignatureDefs, packed in a ``SignatureDefMap``).
* ``tensorflow.serving.ModelService/GetModelStatus`` and ``HandleReloadConfigRequest``.
* ``Classify``, ``Regress``, ``MultiInference`` answer UNIMPLEMENTED.

Status codes and messages follow TF Serving (``predict_util.cc``, ``get_model_status_impl.cc``,
``server_core.cc``): unknown signature -> FAILED_PRECONDITION ``Serving signature key "X" not
found.``; missing / extra inputs, wrong dtype or shape -> INVALID_ARGUMENT; unknown model or
version -> NOT_FOUND; unknown version label -> INVALID_ARGUMENT. A request over
``--max-request-bytes`` is refused by gRPC (RESOURCE_EXHAUSTED) before it is parsed, and once
``--max-concurrent-requests`` are in flight further ones are refused at once (RESOURCE_EXHAUSTED),
never queued without bound. ``--grpc-max-threads`` worker threads run requests; TensorFlow runs
the graphs with its own intra-/inter-op pools.

Model paths are confined: every base path (from ``--model-config-file`` or a
``HandleReloadConfigRequest``), version directory and file in it must resolve, symlinks and ``..``
resolved, inside ``--model-root`` (default: ``--model-base-path``; a config file alone: the
directory holding all its base paths); anything else is refused with INVALID_ARGUMENT. TF Serving itself loads whatever path a reload request names;
``--allow-models-outside-root`` restores that, for a server whose ModelService no untrusted
caller can reach (``serving/TF_SERVING.md`` says how to keep the real server's ModelService private).

Errors raised inside a graph come back as their own sentence (``tfrec.tf_errors.clean_tf_message``): the message of
the failed check, never TensorFlow's graph dump.

Versions, policies, warmup, load retries and load-before-unload: ``tfrec.serving.model_manager``.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path
from typing import List, Optional

import grpc

log = logging.getLogger("tfrec.serving")

DEFAULT_MAX_REQUEST_BYTES = 64 << 20


def _abort(context, err):
    context.abort(err.code, err.message)


def _version(model_spec) -> Optional[int]:
    return model_spec.version.value if model_spec.HasField("version") else None


class PredictionServicer:
    """``PredictionService`` over a ``ModelManager``."""

    def __init__(self, manager):
        self.manager = manager

    def Predict(self, request, context):
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        from tfrec.serving.model_manager import DEFAULT_SIGNATURE, ServingError
        try:
            spec = request.model_spec
            servable = self.manager.get(spec.name, _version(spec), spec.version_label or None)
            outputs = servable.predict(spec.signature_name, request.inputs, request.output_filter)
        except ServingError as err:
            return _abort(context, err)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = spec.signature_name or DEFAULT_SIGNATURE
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):
        from tensorflow_serving.apis import get_model_metadata_pb2

        from tfrec.serving.model_manager import ServingError
        if not request.HasField("model_spec"):
            return context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        if not request.metadata_field:
            return context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                 "GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != "signature_def":
                return context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {field} is not supported")
        spec = request.model_spec
        try:
            servable = self.manager.get(spec.name, _version(spec), spec.version_label or None)
        except ServingError as err:
            return _abort(context, err)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in servable.signature_defs.items():
            sig_map.signature_def[key].CopyFrom(sig)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].Pack(sig_map)
        return response

    def Classify(self, request, context):
        return context.abort(grpc.StatusCode.UNIMPLEMENTED, "tfrec serve implements Predict only; use Predict")

    Regress = MultiInference = Classify


class ModelServicer:
    """``ModelService``: ``GetModelStatus`` and ``HandleReloadConfigRequest``."""

    def __init__(self, manager, rebase: Optional[os.PathLike] = None, root: Optional[os.PathLike] = None):
        self.manager = manager
        self.rebase = rebase
        self.root = root

    def GetModelStatus(self, request, context):
        from tensorflow_serving.apis import get_model_status_pb2

        from tfrec.serving.model_manager import ServingError
        if not request.HasField("model_spec"):
            return context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        try:
            states = self.manager.version_status(request.model_spec.name, _version(request.model_spec))
        except ServingError as err:
            return _abort(context, err)
        response = get_model_status_pb2.GetModelStatusResponse()
        for version, status in sorted(states.items()):
            entry = response.model_version_status.add()
            entry.version = version
            entry.state = status.state.value
            if status.error is not None:
                entry.status.error_code = status.error.code.value[0]
                entry.status.error_message = status.error.message
        return response

    def HandleReloadConfigRequest(self, request, context):
        from tensorflow_serving.apis import model_management_pb2

        from tfrec.serving.model_manager import configs_from_proto
        try:
            configs = configs_from_proto(request.config, self.rebase, self.root)
        except ValueError as err:  # malformed, or a base path outside the model root
            return context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        self.manager.set_configs(configs)
        self.manager.poll()
        response = model_management_pb2.ReloadConfigResponse()
        failed = self.manager.load_errors()
        if failed:
            name, version, error = failed[0]
            response.status.error_code = error.code.value[0]
            response.status.error_message = f"{name} version {version}: {error.message}"
        return response


class ModelServer:
    """The gRPC server and its model manager; ``start()`` returns once models are loaded."""

    def __init__(self, configs, port: int = 8500, host: str = "127.0.0.1", poll_seconds: float = 1.0,
                 max_threads: int = 8, max_concurrent_requests: int = 64,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, warmup: bool = True,
                 rebase: Optional[os.PathLike] = None, config_file: Optional[os.PathLike] = None,
                 config_poll_seconds: float = 0.0, root: Optional[os.PathLike] = None,
                 max_load_retries: int = 5, load_retry_seconds: float = 1.0, settle_seconds: float = 1.0):
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        from tfrec.serving.model_manager import ModelManager
        if max_threads < 1 or max_concurrent_requests < 1 or max_request_bytes < 1:
            raise ValueError("--grpc-max-threads, --max-concurrent-requests and --max-request-bytes must be positive")
        self.manager = ModelManager(configs, poll_seconds=poll_seconds, warmup=warmup,
                                    max_load_retries=max_load_retries, retry_seconds=load_retry_seconds, root=root,
                                    settle_seconds=settle_seconds)
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="tfrec-grpc"),
            maximum_concurrent_rpcs=max_concurrent_requests,
            options=[("grpc.max_receive_message_length", max_request_bytes),
                     ("grpc.max_send_message_length", -1),
                     ("grpc.so_reuseport", 0)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(self.manager), self.server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(self.manager, rebase, root), self.server)
        self.port = self.server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"cannot bind {host}:{port} (in use?); pick another --port")
        self.host = host
        self.config_file, self.rebase, self.config_poll_seconds = config_file, rebase, config_poll_seconds
        self.root = root
        self._stop = threading.Event()

    def start(self) -> "ModelServer":
        self.manager.start()
        self.server.start()
        if self.config_file and self.config_poll_seconds > 0:
            threading.Thread(target=self._watch_config, daemon=True, name="tfrec-config-poll").start()
        return self

    def _watch_config(self):
        from tfrec.serving.model_manager import read_config_file
        while not self._stop.wait(self.config_poll_seconds):
            try:
                self.manager.set_configs(read_config_file(self.config_file, self.rebase, self.root))
            except Exception as err:  # keep the current config, like TF Serving
                log.error("model config file %s not reloaded: %s", self.config_file, err)

    def stop(self, grace: float = 2.0) -> None:
        self._stop.set()
        self.server.stop(grace).wait()
        self.manager.stop()

    def wait(self) -> None:
        self.server.wait_for_termination()


# -- command line ---------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags; TF Serving's spelling (``--model_base_path``) is accepted next to ours."""
    def flag(name, **kw):
        p.add_argument(f"--{name}", f"--{name.replace('-', '_')}", **kw)

    flag("port", type=int, default=8500, help="gRPC port (0 = any free port; the chosen one is printed)")
    flag("host", default="127.0.0.1", help="address to bind (TF Serving binds 0.0.0.0; this stand-in "
                                           "defaults to loopback)")
    flag("model-base-path", help="every model under this directory (<model>/<version>/), or with "
                                 "--model-name that one model's directory")
    flag("model-name", help="serve only this model (TF Serving's --model_name)")
    flag("model-config-file", help="a ModelServerConfig text proto, e.g. serving/models.config; with "
                                   "--model-base-path too, each base_path's parent is replaced by it")
    flag("model-config-file-poll-wait-seconds", type=float, default=0.0,
         help="re-read --model-config-file this often (0 = never)")
    flag("file-system-poll-wait-seconds", type=float, default=1.0,
         help="how often version directories are listed for new / removed versions (0 = only at start)")
    flag("grpc-max-threads", type=int, default=8, help="worker threads running requests")
    flag("max-concurrent-requests", type=int, default=64,
         help="requests in flight at once; more are refused with RESOURCE_EXHAUSTED, not queued")
    flag("max-request-bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES,
         help="largest request message accepted (larger: RESOURCE_EXHAUSTED)")
    flag("tensorflow-intra-op-parallelism", type=int, default=0, help="TF intra-op threads (0 = TF's default)")
    flag("tensorflow-inter-op-parallelism", type=int, default=0, help="TF inter-op threads (0 = TF's default)")
    flag("max-num-load-retries", type=int, default=5,
         help="retries of a version that failed to load, with backoff (it is also retried whenever its "
              "directory changes, e.g. while a cp -r is still writing it)")
    flag("load-retry-interval-seconds", type=float, default=1.0,
         help="first retry interval of a failed load; doubles per retry, at most 60 s")
    flag("version-settle-seconds", type=float, default=1.0,
         help="load a new or changed version directory only once nothing in it changed for this long")
    flag("model-root", help="every model base path (from --model-config-file or a reload request), version "
                            "directory and file in it must resolve inside this directory; default: "
                            "--model-base-path, else the directory holding all the config file's base paths")
    p.add_argument("--allow-models-outside-root", action="store_true",
                   help="TF Serving's behaviour: a HandleReloadConfigRequest may point at any directory the server "
                        "can read. Only for a server whose ModelService no untrusted caller can reach")
    p.add_argument("--no-warmup", action="store_true",
                   help="skip assets.extra/tf_serving_warmup_requests when loading a version")


def model_root(args) -> Optional[str]:
    """The directory every model must lie in: ``--model-root``, else ``--model-base-path``, else (a
    config file alone) the deepest directory holding every base path of the config file; None with
    ``--allow-models-outside-root``."""
    if getattr(args, "allow_models_outside_root", False):
        return None
    if getattr(args, "model_root", None) or args.model_base_path:
        return getattr(args, "model_root", None) or args.model_base_path
    if not args.model_config_file:
        return None  # configs_from_args says what to give
    from tfrec.serving.model_manager import read_config_file
    parents = [str(c.base_path.parent) for c in read_config_file(args.model_config_file)]
    common = os.path.commonpath(parents) if parents else None
    if common is None or str(Path(common)) == Path(common).anchor:
        raise ValueError(f"{args.model_config_file}: its base paths share no directory to confine models to "
                         f"({'none listed' if not parents else 'only ' + str(common)}); give --model-root DIR "
                         "(or --allow-models-outside-root, where no untrusted caller reaches the ModelService)")
    return common


def configs_from_args(args) -> List:
    """The models to serve; each base path must lie inside ``model_root(args)`` (checked here, at start)."""
    from tfrec.serving.model_manager import configs_from_base_path, confine, read_config_file
    if not args.model_config_file and not args.model_base_path:
        raise ValueError("give --model-base-path (e.g. saved_models) or --model-config-file (e.g. serving/models.config)")
    root = model_root(args)
    if args.model_config_file:
        return read_config_file(args.model_config_file, rebase=args.model_base_path, root=root)
    configs = configs_from_base_path(args.model_base_path, args.model_name)
    if root is not None:
        for c in configs:
            confine(c.base_path, Path(root).resolve(), f"model {c.name} base_path (from --model-base-path)")
    return configs


def run(args) -> None:
    import tensorflow as tf
    if args.tensorflow_intra_op_parallelism:
        tf.config.threading.set_intra_op_parallelism_threads(args.tensorflow_intra_op_parallelism)
    if args.tensorflow_inter_op_parallelism:
        tf.config.threading.set_inter_op_parallelism_threads(args.tensorflow_inter_op_parallelism)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    configs = configs_from_args(args)
    root = model_root(args)
    server = ModelServer(configs, port=args.port, host=args.host,
                         poll_seconds=args.file_system_poll_wait_seconds, max_threads=args.grpc_max_threads,
                         max_concurrent_requests=args.max_concurrent_requests,
                         max_request_bytes=args.max_request_bytes, warmup=not args.no_warmup,
                         rebase=args.model_base_path if args.model_config_file else None,
                         config_file=args.model_config_file,
                         config_poll_seconds=args.model_config_file_poll_wait_seconds, root=root,
                         max_load_retries=args.max_num_load_retries,
                         load_retry_seconds=args.load_retry_interval_seconds,
                         settle_seconds=args.version_settle_seconds)
    log.info("model root: %s", server.root or "none: --allow-models-outside-root, reload requests may name any path")
    server.start()
    for config in configs:
        versions = sorted(server.manager.servables.get(config.name, {}))
        log.info("model %s from %s: versions %s available", config.name, config.base_path, versions or "none")
    stopped = threading.Event()

    def _stop(signum, _frame):
        log.info("signal %d: stopping", signum)
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # The line scripts and tests wait for (TF Serving prints the same words).
    print(f"Running gRPC ModelServer at {args.host}:{server.port} ...", flush=True)
    stopped.wait()
    server.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tfrec serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
