"""A model trained with user vectors (CHIME / LEARN) in serving: `tfrec precompute` caches each user's
state computed with the vector of the slice in force at the states' time, the client and `tfrec query`
send it on a cache miss, and the scores are the Keras model's. The server runs in-process."""
import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from pipelines.common import USER_VECTORS_KEY, user_vectors_info
from tests.models.test_models import SPEC, make_din
from tests.serving.conftest import keras_probabilities
from tests.serving.test_client import _histories
from tfrec.cache import SQLiteCache
from tfrec.cli import main
from tfrec.data.tfrecord import write_user_histories
from tfrec.data.user_vectors import UserVectors
from tfrec.export import export_saved_model
from tfrec.serving.client import ServingClient
from tfrec.serving.model_manager import configs_from_base_path
from tfrec.serving.precompute import data_now
from tfrec.serving.requests import user_features
from tfrec.serving.server import ModelServer
from tfrec.testing import random_features

D = 4
VSPEC = dataclasses.replace(SPEC, user_vector_dim=D)
CANDIDATES = [0, 7, 13, 21, 39]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """DIN with user vectors (``din``) and without (``plain``) behind an in-process server; the data
    directory; users 100..104 (100: no history), vectors for 100..103 in two slices (104: none)."""
    root = tmp_path_factory.mktemp("user-vector-serving")
    histories = _histories(n_users=5, seed=6)
    now = data_now(histories)
    vectors = UserVectors(user_id=histories.user_ids[:4], boundaries=[now - 5_000_000, now - 10],
                          vectors=np.random.default_rng(0).normal(size=(4, 2, D)), name="chime")
    vectors.save(root / "user_vectors.npz")
    base = root / "saved_models"
    models = {}
    for name, spec in (("din", VSPEC), ("plain", SPEC)):
        tf.keras.utils.set_random_seed(11)
        models[name] = make_din(spec)
        models[name](random_features(spec, 2, 3))
    # what `tfrec export` writes for a run trained with --user-vectors
    export_saved_model(models["din"], VSPEC, base, "din",
                       metadata={USER_VECTORS_KEY: user_vectors_info(vectors, root / "user_vectors.npz")})
    export_saved_model(models["plain"], SPEC, base, "plain")
    data = root / "data"
    data.mkdir()
    write_user_histories(data / "user_histories.tfrecord", SPEC,
                         [{"user_id": int(u), **histories.history(int(u))} for u in histories.user_ids])
    (data / "spec.json").write_text(json.dumps(SPEC.to_dict()))  # the data's spec: no user vector
    server = ModelServer(configs_from_base_path(base), port=0, poll_seconds=0, max_threads=2).start()
    try:
        yield SimpleNamespace(root=root, base=base, data=data, histories=histories, now=now, vectors=vectors,
                              model=models["din"], target=f"127.0.0.1:{server.port}")
    finally:
        server.stop()


def _inputs(served, uid, ts, slice_index):
    """The user_tower inputs with the vector of ``slice_index`` chosen by hand (None: zeros)."""
    rows = {int(u): i for i, u in enumerate(served.vectors.user_id)}
    vector = None if slice_index is None or uid not in rows else served.vectors.vectors[rows[uid], slice_index]
    return user_features(uid, served.histories.history(uid), ts, VSPEC.max_history_length, spec=VSPEC,
                         user_vector=vector)


def _state(model, features):
    return {k: v.numpy() for k, v in model.encode_user({k: tf.constant(v) for k, v in features.items()},
                                                       training=False).items()}


def _precompute(served, cache_name, *flags):
    return main(["precompute", "--target", served.target, "--model", "din", "--data", str(served.data),
                 "--cache", f"sqlite:///{served.root / cache_name}", "--export-base", str(served.base), *flags])


def test_precompute_caches_states_with_the_vector_of_the_slice_in_force(served, capsys):
    early = served.now - 1_000_000  # in slice 0
    assert _precompute(served, "early.db", "--request-timestamp", str(early), "--batch-size", "2") == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["users"], summary["request_timestamp"]) == (5, early)
    assert summary["user_vectors"] == {"name": "chime", "dim": D, "slice_boundary": served.now - 5_000_000}
    cache = SQLiteCache(served.root / "early.db")
    for uid in map(int, served.histories.user_ids):  # 100 (empty history) and 104 (no vector) included
        cached = cache.get("din", 1, uid)
        expected = _state(served.model, _inputs(served, uid, early, 0))
        for key, value in expected.items():
            np.testing.assert_allclose(cached[key], value[0], atol=1e-5, err_msg=f"user {uid}, {key}")
    # the vector matters: slice 1's (or none) gives another state
    other = _state(served.model, _inputs(served, 101, early, 1))["user_embedding"][0]
    assert not np.allclose(cache.get("din", 1, 101)["user_embedding"], other, atol=1e-3)
    zeros = _state(served.model, _inputs(served, 101, early, None))["user_embedding"][0]
    assert not np.allclose(cache.get("din", 1, 101)["user_embedding"], zeros, atol=1e-3)

    # default time: the data's now, in slice 1
    assert _precompute(served, "now.db") == 0
    assert json.loads(capsys.readouterr().out)["user_vectors"]["slice_boundary"] == served.now - 10
    cached = SQLiteCache(served.root / "now.db").get("din", 1, 102)
    np.testing.assert_allclose(cached["user_embedding"],
                               _state(served.model, _inputs(served, 102, served.now, 1))["user_embedding"][0],
                               atol=1e-5)


def test_client_scores_match_keras_from_cache_and_on_a_miss(served):
    early = served.now - 1_000_000
    assert _precompute(served, "client.db", "--request-timestamp", str(early)) == 0
    expected = {s: keras_probabilities(served.model, _inputs(served, 103, ts, s), np.array([CANDIDATES]))[0]
                for s, ts in ((0, early), (1, served.now))}
    assert not np.allclose(expected[0], expected[1], atol=1e-4)
    history = served.histories.history(103)
    with ServingClient(served.target, "din", SQLiteCache(served.root / "client.db"), spec=VSPEC,
                       user_vectors=served.vectors, max_history_length=VSPEC.max_history_length) as client:
        probs, (_, source) = client.score_with_source(103, history, CANDIDATES, request_timestamp=early)
        assert source == "cache"
        np.testing.assert_allclose(probs, expected[0], atol=1e-5)
        assert client.served_user_vector_dim() == D
    with ServingClient(served.target, "din", user_vectors=served.vectors, spec=VSPEC,
                       max_history_length=VSPEC.max_history_length) as client:  # no cache: user_tower
        probs, (_, source) = client.score_with_source(103, history, CANDIDATES, request_timestamp=served.now)
        assert source == "user_tower"
        np.testing.assert_allclose(probs, expected[1], atol=1e-5)
        # no request time = now: the newest slice, even for a history that ended before its boundary
        old = {k: v[v_time < served.vectors.boundaries[1]] if np.ndim(v) else v
               for v_time in [np.asarray(history["hist_timestamp"])] for k, v in history.items()}
        assert max(old["hist_timestamp"]) < served.vectors.boundaries[1]
        np.testing.assert_allclose(client.features(103, old)["user_vector"][0], served.vectors.vectors[3, 1])


def test_query_command_sends_the_vector_and_the_flag_overrides_the_recorded_file(served, capsys):
    query = ["query", "--target", served.target, "--model", "din", "--data", str(served.data), "--user-id", "102",
             "--candidates", ",".join(map(str, CANDIDATES)), "--request-timestamp", str(served.now),
             "--export-base", str(served.base)]
    expected = keras_probabilities(served.model, _inputs(served, 102, served.now, 1), np.array([CANDIDATES]))[0]
    assert main(query) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["user_state"] == "user_tower"
    np.testing.assert_allclose([s["probability"] for s in result["scores"]], expected, atol=1e-5)
    flipped = dataclasses.replace(served.vectors, vectors=-served.vectors.vectors)
    flipped.save(served.root / "flipped.npz")
    assert main(query + ["--user-vectors", str(served.root / "flipped.npz")]) == 0
    moved = [s["probability"] for s in json.loads(capsys.readouterr().out)["scores"]]
    assert not np.allclose(moved, expected, atol=1e-4)


def test_clear_errors(served, tmp_path, capsys):
    UserVectors(user_id=[100], boundaries=[1], vectors=np.zeros((1, 1, 3))).save(tmp_path / "narrow.npz")
    cases = [(["--user-vectors", str(tmp_path / "gone.npz")], ["--user-vectors", "not found"]),
             (["--user-vectors", str(tmp_path / "narrow.npz")], ["D=3", f"[B, {D}]"]),
             (["--export-base", str(tmp_path)], ["--user-vectors PATH", "no file is known"])]
    for flags, words in cases:
        assert _precompute(served, "errors.db", *flags) == 2, flags
        err = capsys.readouterr().err
        assert all(w in err for w in words), err
    # a model trained without user vectors refuses the flag, and takes no vector
    assert main(["precompute", "--target", served.target, "--model", "plain", "--data", str(served.data),
                 "--cache", f"sqlite:///{tmp_path / 'plain.db'}", "--user-vectors",
                 str(served.root / "user_vectors.npz")]) == 2
    assert "takes no user_vector" in capsys.readouterr().err
    with ServingClient(served.target, "plain") as client:
        assert client.served_user_vector_dim() == 0
    with pytest.raises(ValueError, match="user_vector_dim=4.*user_vectors"):
        ServingClient(served.target, "din", spec=VSPEC)
    with pytest.raises(ValueError, match="D=3"):
        ServingClient(served.target, "din", spec=VSPEC, user_vectors=UserVectors.load(tmp_path / "narrow.npz"))
