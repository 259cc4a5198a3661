"""``tfrec serve`` through the stock TF Serving stubs: numbers, metadata, status codes, limits."""
import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                     prediction_service_pb2_grpc)

from tests.models.test_models import SPEC
from tests.serving.conftest import MAX_REQUEST_BYTES, history_features, keras_probabilities
from tfrec.serving.requests import from_tensor_proto, predict_request

CANDIDATES = np.array([[0, 5, 17, 39], [3, 3, 8, 41], [1, 2, 3, 4]], np.int64)  # 41: unknown item


@pytest.fixture(scope="module")
def stubs(server):
    channel = grpc.insecure_channel(server.target, options=[("grpc.max_send_message_length", -1)])
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel), model_service_pb2_grpc.ModelServiceStub(channel)
    channel.close()


def predict(stub, inputs, signature="", model="dmgin", **kw):
    response = stub.Predict(predict_request(model, inputs, signature, **kw), timeout=30)
    return {k: from_tensor_proto(v) for k, v in response.outputs.items()}, response


@pytest.mark.parametrize("name", ["dmgin", "din"])
def test_stock_stub_gets_the_keras_numbers(stubs, exported, name):
    stub, _ = stubs
    features = history_features()
    expected = keras_probabilities(exported["models"][name], features, CANDIDATES)
    # end to end
    out, response = predict(stub, {**features, "candidate_item_id": CANDIDATES}, model=name)
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    assert (response.model_spec.name, response.model_spec.version.value) == (name, 1)
    assert response.model_spec.signature_name == "serving_default"  # empty signature_name means this
    # two-tower path: user_tower then score
    state, _ = predict(stub, features, "user_tower", model=name)
    assert state["fingerprint"].shape == (3,)
    scored, _ = predict(stub, {**state, "candidate_item_id": CANDIDATES}, "score", model=name)
    np.testing.assert_allclose(scored["probabilities"], expected, atol=1e-5)
    assert not np.allclose(expected, expected[0, 0])  # the comparison is not between constants


def test_metadata_lists_the_three_signatures(stubs):
    stub, _ = stubs
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "dmgin"
    response = stub.GetModelMetadata(request, timeout=30)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(sig_map)
    assert {"user_tower", "score", "serving_default"} <= set(sig_map.signature_def)
    assert set(sig_map.signature_def["score"].inputs) >= {"candidate_item_id", "fingerprint", "group_states"}
    assert set(sig_map.signature_def["score"].outputs) == {"probabilities"}
    assert response.model_spec.version.value == 1


def test_model_status(stubs):
    _, models = stubs
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "din"
    status = models.GetModelStatus(request, timeout=30).model_version_status
    assert [(s.version, s.state) for s in status] == [(1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
    request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as err:
        models.GetModelStatus(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "Could not find any versions of model nope"
    request.model_spec.name = "din"
    request.model_spec.version.value = 7
    with pytest.raises(grpc.RpcError) as err:
        models.GetModelStatus(request, timeout=30)
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.NOT_FOUND, "Could not find version 7 of model din")


def _bad_requests():
    f = history_features(batch=2)
    c = CANDIDATES[:2]
    wrong_dtype = {**f, "user_id": f["user_id"].astype(np.float32)}
    wrong_rank = {**f, "hist_item_id": f["hist_item_id"][0]}
    ragged_batch = {**f, "user_segment": f["user_segment"][:1]}
    state_like = {**f, "candidate_item_id": c, "extra": np.zeros(2)}
    return [
        ("unknown signature", dict(inputs=f, signature="nope"), grpc.StatusCode.FAILED_PRECONDITION,
         'Serving signature key "nope" not found.'),
        ("missing input", dict(inputs=f), grpc.StatusCode.INVALID_ARGUMENT,
         "input size does not match signature: 9!=10"),
        ("extra input", dict(inputs=state_like), grpc.StatusCode.INVALID_ARGUMENT, "Sent extra: {extra}"),
        ("wrong dtype", dict(inputs=wrong_dtype, signature="user_tower"), grpc.StatusCode.INVALID_ARGUMENT,
         "to be int64 but float32 is provided"),
        ("wrong shape", dict(inputs=wrong_rank, signature="user_tower"), grpc.StatusCode.INVALID_ARGUMENT,
         'input "hist_item_id" has shape'),
        ("batch mismatch", dict(inputs=ragged_batch, signature="user_tower"), grpc.StatusCode.INVALID_ARGUMENT,
         "0th-dimension size"),
        ("unknown model", dict(inputs=f, model="nope"), grpc.StatusCode.NOT_FOUND,
         "Servable not found for request: Latest(nope)"),
        ("unknown version", dict(inputs=f, version=9), grpc.StatusCode.NOT_FOUND,
         "Servable not found for request: Specific(dmgin, 9)"),
        ("unknown label", dict(inputs=f, version_label="canary"), grpc.StatusCode.INVALID_ARGUMENT,
         "Unrecognized servable version label: canary"),
    ]


@pytest.mark.parametrize("case", _bad_requests(), ids=lambda c: c[0])
def test_bad_request_gets_tf_serving_status_and_server_keeps_serving(stubs, case):
    stub, _ = stubs
    _, kw, code, message = case
    kw = dict(kw)
    inputs = kw.pop("inputs")
    with pytest.raises(grpc.RpcError) as err:
        predict(stub, inputs, **kw)
    assert err.value.code() == code, err.value.details()
    assert message in err.value.details()
    out, _ = predict(stub, history_features(batch=1), "user_tower")  # a good request right after
    assert out["group_states"].shape[0] == 1


def test_state_from_another_model_is_refused(stubs):
    stub, _ = stubs
    features = history_features(batch=1)
    din_state, _ = predict(stub, features, "user_tower", model="din")
    dmgin_state, _ = predict(stub, features, "user_tower", model="dmgin")
    forged = {**dmgin_state, "fingerprint": din_state["fingerprint"], "candidate_item_id": CANDIDATES[:1]}
    with pytest.raises(grpc.RpcError) as err:
        predict(stub, forged, "score")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "fingerprint" in err.value.details()


def test_metadata_errors(stubs):
    stub, _ = stubs
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "dmgin"
    with pytest.raises(grpc.RpcError) as err:
        stub.GetModelMetadata(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    request.metadata_field.append("signature_def")
    request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as err:
        stub.GetModelMetadata(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_oversized_request_is_rejected(stubs):
    stub, _ = stubs
    n = MAX_REQUEST_BYTES // 8  # int64 ids: the history alone exceeds the limit
    f = history_features(batch=1)
    big = {**f, "hist_item_id": np.zeros((1, n), np.int64)}
    with pytest.raises(grpc.RpcError) as err:
        predict(stub, big, "user_tower")
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    out, _ = predict(stub, f, "user_tower")
    assert "fingerprint" in out


def test_over_concurrency_limit_is_refused_not_queued(stubs):
    """With --max-concurrent-requests 2, a burst of 24 slow requests: the excess is refused with
    RESOURCE_EXHAUSTED at once, every accepted one succeeds, and the server answers afterwards."""
    stub, _ = stubs
    features = history_features(batch=256, length=SPEC.max_history_length, seed=9)
    request = predict_request("dmgin", {**features, "candidate_item_id": np.zeros((256, 100), np.int64)})
    calls = [stub.Predict.future(request, timeout=60) for _ in range(24)]
    codes = []
    for call in calls:
        try:
            call.result()
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as err:
            codes.append(err.code())
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 1
    assert codes.count(grpc.StatusCode.OK) >= 1
    out, _ = predict(stub, history_features(batch=1), "user_tower")
    assert "fingerprint" in out


def test_unimplemented_apis(stubs):
    from tensorflow_serving.apis import classification_pb2
    stub, _ = stubs
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "dmgin"
    with pytest.raises(grpc.RpcError) as err:
        stub.Classify(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
