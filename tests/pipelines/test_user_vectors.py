"""--user-vectors through the stages and the notebook API: train remembers the file, evaluate / predict /
export of the run need no flag; --min-request-timestamp trains on the later examples only."""
import json

import numpy as np
import pytest
import tensorflow as tf

import tfrec
from tfrec import cli
from tfrec.data.spec import FeatureSpec
from tfrec.data.tfrecord import write_examples, write_user_histories
from tfrec.data.user_vectors import UserVectors

SPEC = FeatureSpec(n_items=20, n_user_segments=2, max_history_length=4)
N_USERS, D = 12, 3


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny data directory (spec.json, histories, train/test) + a user-vector file."""
    root = tmp_path_factory.mktemp("uv")
    data_dir = root / "data"
    data_dir.mkdir()
    rng = np.random.default_rng(0)
    users = [dict(user_id=u, user_segment=u % 2, hist_item_id=[u % 20, (u + 1) % 20], hist_behavior_type=[0, 1],
                  hist_timestamp=[5, 50], hist_duration=[1.0, 1.0], hist_amount=[0.0, 0.0]) for u in range(N_USERS)]
    write_user_histories(data_dir / "user_histories.tfrecord", SPEC, users)
    for split, times in (("train", (20, 200)), ("test", (300, 400))):
        examples = [dict(user_id=int(u), item_id=int(rng.integers(0, 20)), request_timestamp=int(t),
                         label=int(rng.integers(0, 2)))
                    for u in range(N_USERS) for t in times]
        write_examples(data_dir / f"{split}.tfrecord", SPEC, examples)
    (data_dir / "spec.json").write_text(json.dumps(SPEC.to_dict()))
    vectors = UserVectors(user_id=np.arange(N_USERS), boundaries=[100, 250],
                          vectors=rng.normal(size=(N_USERS, 2, D)).astype(np.float32), name="chime", meta={"t1": 100})
    vectors.save(root / "chime.npz")
    return data_dir, root / "chime.npz"


def test_stages_remember_the_user_vector_file(data, tmp_path, capsys):
    data_dir, path = data
    run = tmp_path / "run"
    assert cli.main(["train", "--model", "din", "--data", str(data_dir), "--out", str(run), "--epochs", "1",
                     "--batch-size", "8", "--verbose", "0", "--user-vectors", str(path),
                     "--min-request-timestamp", "100", "--set", "embedding_dim=4"]) == 0
    info = json.loads((run / "model.json").read_text())
    assert info["config"]["spec"]["user_vector_dim"] == D
    assert info["user_vectors"]["path"] == str(path.resolve()) and info["user_vectors"]["name"] == "chime"
    assert info["min_request_timestamp"] == 100
    assert info["train_config"]["epochs"] == 1 and len(info["history"]["loss"]) == 1

    assert cli.main(["evaluate", "--run", str(run), "--data", str(data_dir)]) == 0
    assert json.loads((run / "eval-test.json").read_text())["n_examples"] == 2 * N_USERS
    assert cli.main(["predict", "--run", str(run), "--data", str(data_dir), "--out", str(tmp_path / "p.csv")]) == 0
    base = tmp_path / "saved_models"
    assert cli.main(["export", "--run", str(run), "--export-base", str(base)]) == 0
    sig = tf.saved_model.load(str(base / "din" / "1")).signatures["user_tower"].structured_input_signature[1]
    assert sig["user_vector"].shape.as_list() == [None, D]
    meta = json.loads((base / "din" / "1" / "assets.extra" / "tfrec_export.json").read_text())
    assert meta["user_vectors"]["path"] == str(path.resolve())

    # a file of another width, or vectors for a run trained without them: one clear error
    other = UserVectors(user_id=[0], boundaries=[1], vectors=np.zeros((1, 1, D + 1), np.float32))
    other.save(tmp_path / "other.npz")
    assert cli.main(["evaluate", "--run", str(run), "--data", str(data_dir), "--user-vectors",
                     str(tmp_path / "other.npz")]) == 2
    assert f"D={D + 1} but the model was trained with user_vector_dim={D}" in capsys.readouterr().err

    # the recorded file rewritten with other vectors of the same width (a new compression into the same
    # place): refused by its checksum, unless --user-vectors names it explicitly
    rewritten = tmp_path / "rewritten.npz"
    UserVectors(user_id=np.arange(N_USERS), boundaries=[100, 250],
                vectors=np.ones((N_USERS, 2, D), np.float32)).save(rewritten)
    info["user_vectors"]["path"] = str(rewritten)
    (run / "model.json").write_text(json.dumps(info))
    assert cli.main(["evaluate", "--run", str(run), "--data", str(data_dir)]) == 2
    assert "changed since the model was trained" in capsys.readouterr().err
    assert cli.main(["evaluate", "--run", str(run), "--data", str(data_dir), "--user-vectors", str(rewritten)]) == 0


def test_run_without_vectors_rejects_the_flag(data, tmp_path, capsys):
    data_dir, path = data
    run = tmp_path / "plain"
    assert cli.main(["train", "--model", "din", "--data", str(data_dir), "--out", str(run), "--epochs", "1",
                     "--verbose", "0", "--set", "embedding_dim=4"]) == 0
    assert "user_vectors" not in json.loads((run / "model.json").read_text())
    assert cli.main(["evaluate", "--run", str(run), "--data", str(data_dir), "--user-vectors", str(path)]) == 2
    assert "trained without user vectors" in capsys.readouterr().err


def test_notebook_api_reads_the_user_vectors(data):
    data_dir, path = data
    opened = tfrec.open_data(data_dir, user_vectors=path)
    assert opened.user_vectors.dim == D and opened.model_spec.user_vector_dim == D
    batch, _ = next(iter(opened.dataset("train", batch_size=64, min_request_timestamp=100)))
    assert batch["user_vector"].shape == (N_USERS, D) and np.all(batch["request_timestamp"].numpy() >= 100)
    model = tfrec.build_model("din", opened, embedding_dim=4)
    assert model.spec.user_vector_dim == D
    assert tfrec.evaluate(model, opened, "test")["n_examples"] == 2 * N_USERS
