"""Version lifecycle of ``tfrec serve``: discovery without restart, load-before-unload, a broken or
failing-warmup version never takes the serving one down, ``specific`` pinning and labels."""
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (get_model_status_pb2, model_management_pb2, model_service_pb2_grpc,
                                     prediction_log_pb2, prediction_service_pb2_grpc)
from tensorflow_serving.config import model_server_config_pb2

from tests.models.test_models import SPEC, make_dmgin
from tests.serving.conftest import history_features, keras_probabilities
from tfrec.export import export_saved_model
from tfrec.export.saved_model import WARMUP_FILE
from tfrec.serving.process import ServerProcess
from tfrec.serving.requests import from_tensor_proto, predict_request
from tfrec.testing import random_features

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END
CANDIDATES = np.array([[0, 5, 17, 39], [3, 3, 8, 1], [1, 2, 3, 4]], np.int64)


def _status(models, version=None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "dmgin"
    if version is not None:
        request.model_spec.version.value = version
    return {s.version: s for s in models.GetModelStatus(request, timeout=30).model_version_status}


def _wait_for(predicate, timeout=90.0, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _predict(stub, features, **kw):
    response = stub.Predict(predict_request("dmgin", {**features, "candidate_item_id": CANDIDATES}, **kw), timeout=30)
    return from_tensor_proto(response.outputs["probabilities"]), response.model_spec.version.value


def test_version_lifecycle(exported, tmp_path):
    base = tmp_path / "saved_models"
    shutil.copytree(exported["base"] / "dmgin" / "1", base / "dmgin" / "1")
    features = history_features()
    v1_expected = keras_probabilities(exported["models"]["dmgin"], features, CANDIDATES)
    with ServerProcess(["--model-base-path", str(base), "--file-system-poll-wait-seconds", "0.2"]) as server:
        channel = grpc.insecure_channel(server.target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        probs, version = _predict(stub, features)
        assert version == 1
        np.testing.assert_allclose(probs, v1_expected, atol=1e-5)

        # A new version, exported while the server runs, while a client keeps sending requests.
        failures, seen, stop = [], set(), threading.Event()

        def hammer():
            while not stop.is_set():
                try:
                    seen.add(_predict(stub, features)[1])
                except grpc.RpcError as err:
                    failures.append(err.code())

        thread = threading.Thread(target=hammer)
        thread.start()
        tf.keras.utils.set_random_seed(11)
        v2_model = make_dmgin()
        v2_model(random_features(SPEC, 2, 4, seed=0))  # build
        export_saved_model(v2_model, SPEC, base, "dmgin")
        _wait_for(lambda: _status(models).get(2) is not None and _status(models)[2].state == AVAILABLE,
                  what="version 2 to load")
        _wait_for(lambda: 2 in seen, what="requests served by version 2")
        stop.set()
        thread.join()
        assert failures == []  # load-before-unload: no request failed during the switch
        v2_expected = keras_probabilities(v2_model, features, CANDIDATES)
        probs, version = _predict(stub, features)
        assert version == 2
        np.testing.assert_allclose(probs, v2_expected, atol=1e-5)
        assert not np.allclose(v1_expected, v2_expected, atol=1e-4)
        _wait_for(lambda: _status(models)[1].state == END, what="version 1 to unload (latest 1 policy)")

        # A broken version directory is reported and does not take version 2 down.
        (base / "dmgin" / "3").mkdir()
        (base / "dmgin" / "3" / "saved_model.pb").write_bytes(b"not a SavedModel")
        _wait_for(lambda: 3 in _status(models) and _status(models)[3].state == END, what="version 3 to fail")
        broken = _status(models, 3)[3]
        assert broken.status.error_code != 0 and "dmgin version 3" in broken.status.error_message
        assert _predict(stub, features)[1] == 2

        # A version whose warmup request fails never becomes available either.
        shutil.rmtree(base / "dmgin" / "3")
        shutil.copytree(base / "dmgin" / "2", base / "dmgin" / "4")
        bad = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(
            request=predict_request("dmgin", {"user_id": np.zeros(1, np.int64)}, "user_tower")))
        with tf.io.TFRecordWriter(str(base / "dmgin" / "4" / "assets.extra" / WARMUP_FILE)) as w:
            w.write(bad.SerializeToString())
        _wait_for(lambda: 4 in _status(models) and _status(models)[4].state == END, what="version 4 warmup failure")
        assert "input size does not match signature" in _status(models, 4)[4].status.error_message
        assert _predict(stub, features)[1] == 2
        shutil.rmtree(base / "dmgin" / "4")

        # Roll back: pin version 1 with a `specific` policy and label it "stable".
        config = text_format.Parse(f"""
            model_config_list {{ config {{
              name: "dmgin" base_path: "{base / 'dmgin'}" model_platform: "tensorflow"
              model_version_policy {{ specific {{ versions: 1 }} }}
              version_labels {{ key: "stable" value: 1 }}
            }} }}""", model_server_config_pb2.ModelServerConfig())
        response = models.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=config), timeout=60)
        assert response.status.error_code == 0, response.status.error_message
        probs, version = _predict(stub, features)
        assert version == 1
        np.testing.assert_allclose(probs, v1_expected, atol=1e-5)
        assert _predict(stub, features, version_label="stable")[1] == 1
        assert _status(models)[2].state == END
        with pytest.raises(grpc.RpcError) as err:
            _predict(stub, features, version=2)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        channel.close()
    assert "loaded dmgin version 2" in server.log()


def test_serves_from_the_shipped_model_config(exported):
    """`tfrec serve --model-config-file serving/models.config --model-base-path BASE` (the container
    paths of the config re-rooted at BASE): every configured model that has a version serves."""
    from pathlib import Path
    config = Path(__file__).resolve().parents[2] / "serving" / "models.config"
    with ServerProcess(["--model-config-file", str(config), "--model-base-path", str(exported["base"]),
                        "--file-system-poll-wait-seconds", "0"]) as server:
        channel = grpc.insecure_channel(server.target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        features = history_features()
        for name in ("dmgin", "din"):
            response = stub.Predict(predict_request(name, {**features, "candidate_item_id": CANDIDATES}), timeout=30)
            np.testing.assert_allclose(from_tensor_proto(response.outputs["probabilities"]),
                                       keras_probabilities(exported["models"][name], features, CANDIDATES), atol=1e-5)
        channel.close()
