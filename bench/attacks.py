"""Issue 18's five attack cases, replayed against ``tfrec serve`` and the TFRecord reader.

Each case prints what an attacker or an unlucky operator sees: the status code, whether the
answer is finite, how long it took, the message's first words. Nothing is asserted: run it on an
older checkout to see the failures that issue 18 reported, and on this one to see them closed
(``RELIABILITY.md`` lists the tests that hold the fixed behaviour).

1. NaN / +-inf in DMGIN's float inputs (``serving_default``, ``user_tower``) and a NaN ``score``
   state (DIN);
2. a version copied in non-atomically (``saved_model.pb`` first, the rest 2 s later): is it served
   within 15 s of the copy's end?
3. ``HandleReloadConfigRequest`` with ``base_path`` ``<base>/../outside/din``;
4. a CRC-valid TFRecord record with a garbage payload, read by ``scan_tfrecord_files`` with and
   without ``skip_corrupt``;
5. a ``score`` call with a state from another version: the message.

    .venv/bin/python bench/attacks.py
    PYTHONPATH=/path/to/old/checkout .venv/bin/python bench/attacks.py     # the code before the fix
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/ (after PYTHONPATH: an old checkout wins)

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfrec  # noqa: E402,F401
from tests.models.test_models import SPEC, make_din, make_dmgin  # noqa: E402
from tfrec.export import export_saved_model  # noqa: E402
from tfrec.serving.process import ServerProcess  # noqa: E402
from tfrec.serving.requests import from_tensor_proto, predict_request  # noqa: E402
from tfrec.testing import random_features  # noqa: E402

ROWS = []


def row(case, what, outcome):
    ROWS.append((case, what, outcome))
    print(f"{case} | {what} | {outcome}", flush=True)


def call(stub, model, signature, inputs):
    """(status name, outputs or None, first 110 characters of the message)."""
    try:
        response = stub.Predict(predict_request(model, inputs, signature), timeout=30)
        return "OK", {k: from_tensor_proto(v) for k, v in response.outputs.items()}, ""
    except grpc.RpcError as err:
        return err.code().name, None, " ".join((err.details() or "").split())[:110]


def user_inputs(batch=2):
    f = random_features(SPEC, batch, 8, seed=3)
    return {k: np.asarray(f[k]) for k in SPEC.user_input_signature()}


def poison(inputs):
    """``hist_duration`` and ``hist_amount``: NaN, +inf, -inf in turn at every position of every row."""
    out = dict(inputs)
    for key in ("hist_duration", "hist_amount"):
        pattern = np.resize(np.array([np.nan, np.inf, -np.inf], np.float32), out[key].shape[1])
        out[key] = np.broadcast_to(pattern, out[key].shape).astype(np.float32)
    return out


def finite_share(outputs):
    probs = outputs["probabilities"]
    return f"{int(np.isfinite(probs).sum())}/{probs.size} probabilities finite"


def main():
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc
    from tensorflow_serving.config import model_server_config_pb2
    from google.protobuf import text_format

    print(f"code under test: {Path(tfrec.__file__).parent}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="tfrec-attacks-"))
    base = work / "models"
    tf.keras.utils.set_random_seed(7)
    features = random_features(SPEC, 2, 4, seed=0)
    for name, make in (("dmgin", make_dmgin), ("din", make_din)):
        model = make()
        model(features)
        export_saved_model(model, SPEC, base, name)
    shutil.copytree(base / "din", work / "outside" / "din")
    server = ServerProcess(["--model-base-path", str(base), "--file-system-poll-wait-seconds", "0.2"],
                           log_path=work / "serve.log")
    channel = grpc.insecure_channel(server.target)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    candidates = np.arange(10, dtype=np.int64).reshape(2, 5)
    try:
        print("case | what | outcome\n---|---|---")
        # 1. non-finite floats
        bad = poison(user_inputs())
        code, out, msg = call(stub, "dmgin", "serving_default", {**bad, "candidate_item_id": candidates})
        row(1, "dmgin serving_default, NaN/inf in hist_duration, hist_amount", f"{code} {finite_share(out) if out else msg}")
        code, state, msg = call(stub, "dmgin", "user_tower", bad)
        nonfinite = {k: int((~np.isfinite(v)).sum()) for k, v in (state or {}).items() if v.dtype.kind == "f"}
        row(1, "dmgin user_tower, same inputs", f"{code} non-finite state values: "
            f"{ {k: n for k, n in nonfinite.items() if n} or 'none'}" if state else f"{code} {msg}")
        if state:
            code, out, msg = call(stub, "dmgin", "score", {**state, "candidate_item_id": candidates})
            row(1, "dmgin score of that state", f"{code} {finite_share(out) if out else msg}")
        _, state, _ = call(stub, "din", "user_tower", user_inputs())
        state = {k: np.full_like(v, np.nan) if v.dtype.kind == "f" else v for k, v in state.items()}
        code, out, msg = call(stub, "din", "score", {**state, "candidate_item_id": candidates})
        row(1, "din score, NaN in every float of the user state",
            f"{code} {finite_share(out)}, values {np.unique(out['probabilities']).round(4).tolist()[:3]}" if out
            else f"{code} {msg}")

        # 5. a state from another version (before case 3, whose reload may replace the model list)
        state = call(stub, "din", "user_tower", user_inputs(1))[1]
        state["fingerprint"] = state["fingerprint"] + 1
        code, _, msg = call(stub, "din", "score", {**state, "candidate_item_id": candidates[:1]})
        row(5, "din score, fingerprint of another export", f"{code} {msg}")

        # 2. a version copied in non-atomically
        src, dst = base / "din" / "1", base / "din" / "2"
        dst.mkdir()
        shutil.copy2(src / "saved_model.pb", dst / "saved_model.pb")
        time.sleep(2.0)
        for item in src.iterdir():
            if item.name != "saved_model.pb":
                (shutil.copytree if item.is_dir() else shutil.copy2)(item, dst / item.name)
        copied = time.monotonic()
        served = None
        while time.monotonic() - copied < 15 and served is None:
            response = stub.Predict(predict_request("din", user_inputs(1), "user_tower"), timeout=30)
            if response.model_spec.version.value == 2:
                served = time.monotonic() - copied
            time.sleep(0.2)
        row(2, "din version 2 copied with saved_model.pb first, the rest 2 s later",
            f"served {served:.1f} s after the copy ended" if served is not None else "NOT served 15 s after the copy ended")

        # 4. a CRC-valid garbage record
        from tfrec.data.tfrecord import scan_tfrecord_files
        path = work / "garbage.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as writer:
            writer.write(b"\xff\xfe\x00garbage\xff")
        for skip in (False, True):
            try:
                report = scan_tfrecord_files([str(path)], SPEC, SPEC.example_record_features(), skip_corrupt=skip)
                outcome = f"skipped and reported: {[s.path == str(path) for s in report.skipped]}"
            except Exception as err:  # noqa: BLE001 - the point is to show which
                outcome = f"{type(err).__name__}: {' '.join(str(err).split())[:110]}"
            row(4, f"scan_tfrecord_files, skip_corrupt={skip}", outcome)

        # 3. path escape through the reload API
        escape = f"{base}/../outside/din"
        config = text_format.Parse(f'model_config_list {{ config {{ name: "din" base_path: "{escape}" }} }}',
                                   model_server_config_pb2.ModelServerConfig())
        try:
            response = models.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=config),
                                                        timeout=60)
            row(3, "HandleReloadConfigRequest base_path <base>/../outside/din",
                f"OK (error_code {response.status.error_code}): the model now loads from outside --model-base-path")
        except grpc.RpcError as err:
            row(3, "HandleReloadConfigRequest base_path <base>/../outside/din",
                f"{err.code().name} {' '.join(err.details().split())[:110]}")
    finally:
        channel.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
