"""Serving under bad input and unlucky operators (issue 18): non-finite floats, corrupt states,
clean error messages, versions copied in non-atomically, paths outside the model root."""
import os
import shutil
import time

import grpc
import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from tests.models.test_models import SPEC
from tests.serving.conftest import history_features
from tfrec.serving.client import ServingClient
from tfrec.serving import model_manager
from tfrec.serving.model_manager import ModelConfig, ModelManager, OutsideRootError, State, read_config_file
from tfrec.serving.requests import from_tensor_proto, predict_request
from tfrec.serving.server import ModelServer

CANDIDATES = np.array([[0, 5, 17, 39], [3, 3, 8, 40], [1, 2, 3, 4]], np.int64)


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(server.target)
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


def predict(stub, inputs, signature, model):
    response = stub.Predict(predict_request(model, inputs, signature), timeout=30)
    return {k: from_tensor_proto(v) for k, v in response.outputs.items()}


def poisoned(features):
    """Every float input: NaN, +inf, -inf and 3e38 in the first row, the rest untouched."""
    out = dict(features)
    for key, value in features.items():
        if value.dtype.kind == "f":
            value = value.copy()
            flat = value[0].reshape(-1)
            flat[:4] = [np.nan, np.inf, -np.inf, 3e38][:flat.size]
            value[0] = flat.reshape(value[0].shape)
            out[key] = value
    return out


@pytest.mark.parametrize("model", ["dmgin", "din"])
def test_non_finite_request_floats_give_finite_probabilities(stub, model):
    features = history_features()
    bad = poisoned(features)
    assert any(np.isnan(v).any() for v in bad.values() if v.dtype.kind == "f")
    end_to_end = predict(stub, {**bad, "candidate_item_id": CANDIDATES}, "serving_default", model)["probabilities"]
    state = predict(stub, bad, "user_tower", model)
    assert all(np.isfinite(v).all() for v in state.values() if v.dtype.kind == "f")
    scored = predict(stub, {**state, "candidate_item_id": CANDIDATES}, "score", model)["probabilities"]
    for probs in (end_to_end, scored):
        assert np.isfinite(probs).all() and ((probs >= 0) & (probs <= 1)).all()
    np.testing.assert_allclose(end_to_end, scored, atol=1e-5)
    # the rule is "non-finite -> 0": the poisoned row scores like the same row with zeros there
    zeroed = {k: np.where(np.isfinite(v), np.clip(v, -1e12, 1e12), 0).astype(v.dtype) if v.dtype.kind == "f" else v
              for k, v in bad.items()}
    expected = predict(stub, {**zeroed, "candidate_item_id": CANDIDATES}, "serving_default", model)["probabilities"]
    np.testing.assert_allclose(end_to_end, expected, atol=1e-6)
    # rows without bad values are unaffected
    clean = predict(stub, {**features, "candidate_item_id": CANDIDATES}, "serving_default", model)["probabilities"]
    np.testing.assert_allclose(end_to_end[1:], clean[1:], atol=1e-6)


@pytest.mark.parametrize("model", ["dmgin", "din"])
def test_non_finite_state_is_refused_naming_the_input(stub, model):
    state = predict(stub, history_features(batch=1), "user_tower", model)
    key = sorted(k for k, v in state.items() if v.dtype.kind == "f")[-1]
    state[key] = state[key].copy()
    state[key].reshape(-1)[0] = np.nan
    with pytest.raises(grpc.RpcError) as err:
        predict(stub, {**state, "candidate_item_id": CANDIDATES[:1]}, "score", model)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details()
    assert details.startswith(f'user state input "{key}" holds NaN, inf or a value beyond +-1e+15'), details
    assert "Graph execution error" not in details and "node" not in details and len(details) < 200


def test_state_from_another_version_gets_the_export_message_without_graph_dump(stub):
    state = predict(stub, history_features(batch=1), "user_tower", "din")
    state["fingerprint"] = state["fingerprint"] + 1
    with pytest.raises(grpc.RpcError) as err:
        predict(stub, {**state, "candidate_item_id": CANDIDATES[:1]}, "score", "din")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == ("user state fingerprint does not match this model version: the state was "
                                   "computed by another model or version; recompute it with this version's "
                                   "user_tower")


def test_client_recomputes_a_corrupt_cached_state(server, tmp_path):
    from tfrec.cache import SQLiteCache
    cache = SQLiteCache(str(tmp_path / "states.db"))
    client = ServingClient(server.target, "din", cache, max_history_length=SPEC.max_history_length)
    hist = {"item_id": [3, 4, 5], "behavior_type": [0, 1, 0], "timestamp": [10, 20, 30],
            "duration": [1.0, 2.0, 3.0], "amount": [0.0, 0.0, 0.0]}
    good = client.score(7, hist, [1, 2, 3])
    state, version, _ = client.user_state(7, hist)
    corrupt = {k: (np.full_like(v[0], np.nan) if v.dtype.kind == "f" else v[0]) for k, v in state.items()}
    cache.put("din", version, 7, corrupt)
    probs, (_, source) = client.score_with_source(7, hist, [1, 2, 3])
    assert source == "user_tower" and client.stats["retries"] == 1
    np.testing.assert_allclose(probs, good, atol=1e-6)
    assert np.isfinite(cache.get("din", version, 7)["user_embedding"]).all()  # overwritten
    client.close()


# -- versions copied in non-atomically -----------------------------------------------------------
def _copy_slowly(src, dst, then):
    """What ``cp -r`` looks like to a poller: saved_model.pb first, the rest later."""
    dst.mkdir()
    shutil.copy2(src / "saved_model.pb", dst / "saved_model.pb")
    then()
    for item in src.iterdir():
        if item.name != "saved_model.pb":
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, dst / item.name)


def test_half_copied_version_is_retried_once_complete_and_old_one_keeps_serving(exported, tmp_path):
    base = tmp_path / "din"
    shutil.copytree(exported["base"] / "din" / "1", base / "1")
    manager = ModelManager([ModelConfig("din", base)], poll_seconds=0, max_load_retries=3, retry_seconds=3600,
                           settle_seconds=0)
    manager.start()
    assert manager.get("din").version == 1

    def poll_half_written():
        manager.poll()
        status = manager.version_status("din")[2]
        assert status.state == State.END and status.error is not None and status.attempts == 1
        assert manager.get("din").version == 1  # the old version keeps serving
        manager.poll()  # nothing changed, backoff not over: not retried
        assert manager.version_status("din")[2].attempts == 1

    _copy_slowly(base / "1", base / "2", poll_half_written)
    manager.poll()  # the directory changed: loaded at once, no waiting for the backoff
    assert manager.version_status("din")[2].state == State.AVAILABLE
    assert manager.get("din").version == 2


def test_failed_load_retries_with_backoff_then_stops(exported, tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(model_manager.time, "monotonic", lambda: clock[0])
    base = tmp_path / "din"
    shutil.copytree(exported["base"] / "din" / "1", base / "1")
    manager = ModelManager([ModelConfig("din", base)], poll_seconds=0, max_load_retries=2, retry_seconds=0.2,
                           settle_seconds=0)
    manager.start()
    (base / "2").mkdir()
    (base / "2" / "saved_model.pb").write_bytes(b"garbage")

    def attempts_at(t):
        clock[0] = 1000.0 + t
        manager.poll()
        return manager.version_status("din")[2].attempts

    # the first load at 0; retries 0.2 s and then 0.4 s after each failure; then no more
    assert [attempts_at(t) for t in (0, 0.1, 0.25, 0.5, 0.7, 5, 500)] == [1, 1, 2, 2, 3, 3, 3]
    assert manager.version_status("din")[2].retry_at == float("inf")
    assert manager.get("din").version == 1
    (base / "2" / "saved_model.pb").write_bytes(b"garbage, again")  # a change: tried once more
    assert attempts_at(501) == 1


def test_a_directory_still_changing_is_not_loaded_until_it_settles(exported, tmp_path):
    base = tmp_path / "din"
    shutil.copytree(exported["base"] / "din" / "1", base / "1")
    manager = ModelManager([ModelConfig("din", base)], poll_seconds=0, settle_seconds=3600)
    manager.start()  # the first poll takes what is there: version 1 is fresh but loads
    assert manager.get("din").version == 1
    shutil.copytree(base / "1", base / "2")  # e.g. assets.extra still to come
    manager.poll()
    assert 2 not in manager.version_status("din") and manager.get("din").version == 1
    manager.settle_seconds = 0.5
    time.sleep(0.6)
    manager.poll()
    assert manager.get("din").version == 2
    # file times from a clock ahead of ours (cp -a from another host) do not hold a version back:
    # settling is measured on this process's clock
    shutil.copytree(base / "1", base / "3")
    future = time.time() + 86_400
    for path in (base / "3").rglob("*"):
        os.utime(path, (future, future))
    manager.poll()
    time.sleep(0.6)
    manager.poll()
    assert manager.get("din").version == 3


def test_dropped_and_quickly_closed_clients_leave_no_thread_or_error(monkeypatch):
    import gc
    import threading
    import weakref
    errors = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    threads = threading.active_count()
    refs = [weakref.ref(ServingClient("127.0.0.1:1", "din", None)) for _ in range(3)]
    for _ in range(3):
        ServingClient("127.0.0.1:1", "din", None).close()  # closed while its watcher starts
    gc.collect()
    deadline = time.monotonic() + 10
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(r() is None for r in refs), "a dropped client is still referenced (its channel watcher)"
    assert errors == []
    assert threading.active_count() <= threads  # every channel watcher stopped


# -- paths outside the model root ------------------------------------------------------------------
def _reload_config(base_path, name="din"):
    return text_format.Parse(f'model_config_list {{ config {{ name: "{name}" base_path: "{base_path}" }} }}',
                             model_server_config_pb2.ModelServerConfig())


@pytest.fixture
def root_server(exported, tmp_path):
    """An in-process server on a copy of din confined to its root, plus a model outside the root."""
    root = tmp_path / "root"
    shutil.copytree(exported["base"] / "din", root / "din")
    outside = tmp_path / "outside" / "din"
    shutil.copytree(exported["base"] / "din", outside)
    (root / "escape").symlink_to(outside)
    from tfrec.serving.model_manager import configs_from_base_path
    server = ModelServer(configs_from_base_path(root), port=0, poll_seconds=0, max_threads=2, root=root,
                         settle_seconds=0).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield model_service_pb2_grpc.ModelServiceStub(channel), root, outside, server
    channel.close()
    server.stop(0)


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_reload_outside_the_root_is_refused(root_server, how):
    models, root, outside, server = root_server
    base_path = {"dotdot": f"{root}/../outside/din", "absolute": str(outside), "symlink": str(root / "escape")}[how]
    with pytest.raises(grpc.RpcError) as err:
        models.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=_reload_config(base_path)),
                                         timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "outside the model root" in err.value.details() and "base_path" in err.value.details()
    assert server.manager.configs["din"].base_path == (root / "din").resolve()  # config unchanged
    ok = models.HandleReloadConfigRequest(
        model_management_pb2.ReloadConfigRequest(config=_reload_config(root / "din")), timeout=60)
    assert ok.status.error_code == 0


def test_version_symlink_out_of_the_root_is_not_loaded(root_server):
    _, root, outside, server = root_server
    (root / "din" / "7").symlink_to(outside / "1")
    server.manager.poll()
    status = server.manager.version_status("din")[7]
    assert status.state == State.END and status.error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "outside the model root" in status.error.message
    assert server.manager.get("din").version == 1


def test_config_file_entries_are_confined_too(tmp_path):
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "din" base_path: "/models/.." } }')
    with pytest.raises(OutsideRootError, match="outside the model root"):
        read_config_file(config, rebase=tmp_path / "root", root=tmp_path / "root")
    assert read_config_file(config, rebase=tmp_path / "root")[0].base_path == tmp_path.resolve()  # unconfined


def test_client_survives_its_resolved_version_being_unloaded_before_user_tower(exported, tmp_path):
    """The client trusts a resolved latest version for ``version_refresh_seconds``; a swap inside that
    window made ``user_tower`` answer NOT_FOUND to the caller (found by the fault run)."""
    from tfrec.serving.model_manager import configs_from_base_path
    base = tmp_path / "models"
    shutil.copytree(exported["base"] / "din" / "1", base / "din" / "1")
    server = ModelServer(configs_from_base_path(base), port=0, poll_seconds=0, max_threads=2,
                         settle_seconds=0).start()
    client = ServingClient(f"127.0.0.1:{server.port}", "din", None, version_refresh_seconds=3600)
    hist = {"item_id": [3, 4, 5], "behavior_type": [0, 1, 0], "timestamp": [10, 20, 30]}
    try:
        assert client.score_with_source(1, hist, [1, 2, 3])[1] == (1, "user_tower")
        shutil.copytree(base / "din" / "1", base / "din" / ".tmp-2")
        (base / "din" / ".tmp-2").rename(base / "din" / "2")
        server.manager.poll()
        assert sorted(server.manager.servables["din"]) == [2]
        probs, (version, _) = client.score_with_source(1, hist, [1, 2, 3])
        assert version == 2 and client.stats["retries"] == 1 and np.isfinite(probs).all()
    finally:
        client.close()
        server.stop(0)


def test_a_file_linked_out_of_the_root_is_not_loaded(root_server):
    _, root, outside, server = root_server
    version = root / "din" / "8"
    shutil.copytree(outside / "1", version)
    shutil.rmtree(version / "variables")
    (version / "variables").symlink_to(outside / "1" / "variables")
    server.manager.poll()
    status = server.manager.version_status("din")[8]
    assert status.state == State.END and "outside the model root" in status.error.message
    assert status.retry_at == float("inf")  # deterministic: not retried until the directory changes
    assert server.manager.get("din").version == 1


def test_a_directory_linked_inside_the_root_holding_a_link_out_is_not_loaded(root_server):
    _, root, outside, server = root_server
    shared = root / "shared"
    shared.mkdir()
    (shared / "variables").symlink_to(outside / "1" / "variables")  # in the root, pointing out
    version = root / "din" / "9"
    shutil.copytree(outside / "1", version)
    shutil.rmtree(version / "variables")
    (version / "variables").symlink_to(shared / "variables")
    server.manager.poll()
    status = server.manager.version_status("din")[9]
    assert status.state == State.END and "outside the model root" in status.error.message


def test_model_root_from_the_flags(tmp_path):
    import argparse

    from tfrec.serving.server import add_arguments, configs_from_args, model_root
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = tmp_path / "models.config"
    config.write_text(f'model_config_list {{ config {{ name: "a" base_path: "{tmp_path}/models/a" }} '
                      f'config {{ name: "b" base_path: "{tmp_path}/models/b" }} }}')
    # a config file alone: the directory holding every base path, not "anything goes"
    assert model_root(parser.parse_args(["--model-config-file", str(config)])) == str(tmp_path / "models")
    assert model_root(parser.parse_args(["--model-config-file", str(config), "--allow-models-outside-root"])) is None
    assert model_root(parser.parse_args(["--model-base-path", "m", "--model-root", "r"])) == "r"
    assert model_root(parser.parse_args(["--model-base-path", "m"])) == "m"
    for body, match in (("model_config_list {}", "none listed"),
                        ('model_config_list { config { name: "a" base_path: "/a" } config { name: "b" base_path: '
                         '"/srv/b" } }', "only /")):
        config.write_text(body)  # nothing to confine to: refused, never silently unconfined
        with pytest.raises(ValueError, match=f"{match}.*give --model-root"):
            model_root(parser.parse_args(["--model-config-file", str(config)]))
    with pytest.raises(ValueError, match="give --model-base-path"):
        configs_from_args(parser.parse_args([]))
    (tmp_path / "models" / "a" / "1").mkdir(parents=True)
    with pytest.raises(OutsideRootError, match="from --model-base-path"):  # refused at start, not per version
        configs_from_args(parser.parse_args(["--model-base-path", str(tmp_path / "models"),
                                             "--model-root", str(tmp_path / "elsewhere")]))
