"""Export: versioned atomic SavedModels whose three signatures serve like the Keras model,
checked in this process and in a fresh interpreter that imports only TensorFlow."""
import errno
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tests.models.test_models import NUM_GROUPS, SPEC, TABLE, make_din, make_dmgin, make_dmqn, make_siren
from tfrec.export import ExportError, export_saved_model, list_versions, non_stock_ops, read_export_metadata
from tfrec.export import saved_model as saved_model_lib
from tfrec.testing import assert_saved_model_matches, random_features, user_inputs

# The documented signature names (tfrec/export/saved_model.py, FeatureSpec.user_input_signature,
# and each model's "User state" docstring).
USER_INPUTS = {"user_id", "request_timestamp", "hist_length", "user_segment", "hist_item_id",
               "hist_behavior_type", "hist_timestamp", "hist_duration", "hist_amount"}
STATE_KEYS = {
    "din": {"user_embedding", "recent_behaviors", "recent_mask"},
    "dmgin": {"user_embedding", "recent_behaviors", "recent_mask", "group_states", "group_mask", "group_ids"},
    "dmqn": {"user_embedding", "recent_behaviors", "recent_mask", "codeword_states", "codeword_mask"},
    "siren": {"user_embedding", "recent_behaviors", "recent_mask", "history_item_id", "history_behavior_type",
              "history_mask"},
}
CHANGED_ITEM = 5  # its group is moved in the fresh process to show the table is a SavedModel variable


def _features():
    features = random_features(SPEC, 5, 12, seed=21)
    # put the changed item in histories and candidates
    features["hist_item_id"][:, 0] = CHANGED_ITEM
    return features


def _candidates():
    candidates = np.random.default_rng(22).integers(0, SPEC.n_items, size=(5, 4)).astype(np.int64)
    candidates[:, 0] = CHANGED_ITEM
    candidates[4, 3] = SPEC.n_items + 3  # unknown item
    return candidates


def _new_table():
    table = TABLE.copy()
    table[CHANGED_ITEM] = (TABLE[CHANGED_ITEM] % (NUM_GROUPS - 1)) + 1
    assert table[CHANGED_ITEM] != TABLE[CHANGED_ITEM]
    return table


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("saved_models")
    tf.keras.utils.set_random_seed(3)
    features = random_features(SPEC, 2, 4, seed=0)
    din, dmgin, dmqn, siren = make_din(), make_dmgin(), make_dmqn(), make_siren()
    for model in (din, dmgin, dmqn, siren):
        model(features)
    siren.buckets.set_range(-0.2, 0.9)  # as adapt would: the range must reach the SavedModel
    return {
        "base": base, "din": din, "dmgin": dmgin, "dmqn": dmqn, "siren": siren,
        "dmqn/1": export_saved_model(dmqn, SPEC, base, "dmqn"),
        "siren/1": export_saved_model(siren, SPEC, base, "siren"),
        "din/1": export_saved_model(din, SPEC, base, "din"),
        "din/2": export_saved_model(din, SPEC, base, "din", metadata={"note": "second"}),
        "dmgin/1": export_saved_model(dmgin, SPEC, base, "dmgin"),
    }


FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf

    inputs_path, out_path, *dirs = sys.argv[1:]
    data = dict(np.load(inputs_path))
    candidates = tf.constant(data.pop("candidate_item_id"))
    new_table = data.pop("new_table")
    user = {k: tf.constant(v) for k, v in data.items()}
    arrays, report = {}, {}
    for tag, path in zip(dirs[0::2], dirs[1::2]):
        loaded = tf.saved_model.load(path)
        sigs = loaded.signatures
        report[tag] = {"signatures": sorted(sigs), "names": {
            name: {"inputs": sorted(fn.structured_input_signature[1]), "outputs": sorted(fn.structured_outputs)}
            for name, fn in sigs.items()}}
        state = sigs["user_tower"](**user)
        for k, v in state.items():
            arrays[f"{tag}/state/{k}"] = v.numpy()
        arrays[f"{tag}/score"] = sigs["score"](**state, candidate_item_id=candidates)["probabilities"].numpy()
        arrays[f"{tag}/serving_default"] = sigs["serving_default"](**user, candidate_item_id=candidates)[
            "probabilities"].numpy()
        bad = dict(state, fingerprint=state["fingerprint"] + 1)
        try:
            sigs["score"](**bad, candidate_item_id=candidates)
            report[tag]["wrong_fingerprint"] = "accepted"
        except tf.errors.InvalidArgumentError as e:
            report[tag]["wrong_fingerprint"] = "InvalidArgumentError"
        report[tag]["_state"] = state
        tables = [v for v in loaded.model.variables if "item_to_group" in v.name]
        if tables:
            arrays[f"{tag}/table"] = tables[0].numpy()
            tables[0].assign(new_table)
            arrays[f"{tag}/serving_default_new_table"] = sigs["serving_default"](**user, candidate_item_id=candidates)[
                "probabilities"].numpy()
    # a state from one version scored by another version
    if "din1" in report and "din2" in report:
        state = report["din1"]["_state"]
        try:
            tf.saved_model.load(dirs[dirs.index("din2") + 1]).signatures["score"](**state, candidate_item_id=candidates)
            report["cross_version"] = "accepted"
        except tf.errors.InvalidArgumentError:
            report["cross_version"] = "InvalidArgumentError"
    for tag in list(report):
        if isinstance(report[tag], dict):
            report[tag].pop("_state", None)
    report["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("tfrec", "tf_keras"))
    np.savez(out_path + ".npz", **arrays)
    open(out_path + ".json", "w").write(json.dumps(report))
""")


@pytest.fixture(scope="module")
def fresh(exported, tmp_path_factory):
    """Runs every signature of the exports in a new interpreter that imports only TensorFlow."""
    work = tmp_path_factory.mktemp("fresh")
    features, candidates = _features(), _candidates()
    np.savez(work / "inputs.npz", candidate_item_id=candidates, new_table=_new_table(),
             **{k: v.numpy() for k, v in user_inputs(SPEC, features).items()})
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    dirs = ["din1", exported["din/1"], "din2", exported["din/2"], "dmgin", exported["dmgin/1"], "dmqn",
            exported["dmqn/1"], "siren", exported["siren/1"]]
    proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(work / "inputs.npz"), str(work / "out"),
                           *map(str, dirs)], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    arrays = dict(np.load(work / "out.npz"))
    report = json.loads((work / "out.json").read_text())
    return {"arrays": arrays, "report": report, "features": features, "candidates": candidates}


def test_versions_increment_and_leave_no_temp_dir(exported):
    base = exported["base"]
    assert exported["din/1"] == base / "din" / "1" and exported["din/2"] == base / "din" / "2"
    assert list_versions(base / "din") == [1, 2]
    assert sorted(p.name for p in (base / "din").iterdir()) == ["1", "2"]
    assert sorted(p.name for p in (base / "dmgin").iterdir()) == ["1"]
    first, second = read_export_metadata(exported["din/1"]), read_export_metadata(exported["din/2"])
    assert (first["version"], second["version"]) == (1, 2)
    assert first["fingerprint"] != second["fingerprint"]
    assert second["note"] == "second" and first["model_class"] == "DIN"
    assert set(read_export_metadata(exported["dmgin/1"])["state_keys"]) == STATE_KEYS["dmgin"]


def test_existing_version_is_refused(exported):
    with pytest.raises(FileExistsError):
        export_saved_model(exported["din"], SPEC, exported["base"], "din", version=2)


def test_full_disk_is_an_export_error_naming_the_untouched_versions(exported, monkeypatch):
    """The ENOSPC path without a real full disk (tests/export/test_full_disk.py has the real one)."""
    def full_disk_save(*args, **kwargs):
        os.makedirs(args[1], exist_ok=True)
        open(os.path.join(args[1], "saved_model.pb"), "wb").write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(saved_model_lib.tf.saved_model, "save", full_disk_save)
    with pytest.raises(ExportError, match=r"no space left .* the existing versions \[1, 2\] are untouched"):
        export_saved_model(exported["din"], SPEC, exported["base"], "din")
    assert sorted(p.name for p in (exported["base"] / "din").iterdir()) == ["1", "2"]


def test_failed_export_leaves_nothing(exported, monkeypatch):
    def broken_save(*args, **kwargs):
        os.makedirs(args[1], exist_ok=True)  # half-written
        raise RuntimeError("disk full")

    monkeypatch.setattr(saved_model_lib.tf.saved_model, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(exported["din"], SPEC, exported["base"], "din")
    assert sorted(p.name for p in (exported["base"] / "din").iterdir()) == ["1", "2"]


@pytest.mark.parametrize("tag, key", [("din", "din/2"), ("dmgin", "dmgin/1"), ("dmqn", "dmqn/1"), ("siren", "siren/1")])
def test_signatures_match_the_keras_model_in_process(exported, tag, key):
    features = random_features(SPEC, 6, 9, seed=30)
    candidates = np.random.default_rng(31).integers(-2, SPEC.n_items + 2, size=(6, 3))
    out = assert_saved_model_matches(exported[tag], SPEC, exported[key], features, candidates, atol=1e-5)
    assert out["score"].shape == (6, 3)


@pytest.mark.parametrize("tag, key", [("din1", "din"), ("din2", "din"), ("dmgin", "dmgin"), ("dmqn", "dmqn"),
                                      ("siren", "siren")])
def test_fresh_process_matches_the_keras_model(fresh, exported, tag, key):
    arrays, model = fresh["arrays"], exported[key]
    assert fresh["report"]["modules"] == []  # neither tfrec nor tf-keras was imported
    x = user_inputs(SPEC, fresh["features"])
    state = model.encode_user(x, training=False)
    expected = model.score(state, fresh["candidates"], training=False).numpy()
    for k, v in state.items():
        np.testing.assert_allclose(arrays[f"{tag}/state/{k}"], v.numpy(), atol=1e-5, err_msg=k)
    np.testing.assert_allclose(arrays[f"{tag}/serving_default"], expected, atol=1e-5)
    np.testing.assert_allclose(arrays[f"{tag}/score"], arrays[f"{tag}/serving_default"], atol=1e-5)
    assert arrays[f"{tag}/score"].shape == fresh["candidates"].shape


@pytest.mark.parametrize("tag, model", [("din1", "din"), ("din2", "din"), ("dmgin", "dmgin"), ("dmqn", "dmqn"),
                                        ("siren", "siren")])
def test_signature_names_are_the_documented_ones(fresh, tag, model):
    report = fresh["report"][tag]
    assert report["signatures"] == ["score", "serving_default", "user_tower"]
    names = report["names"]
    state = STATE_KEYS[model]
    assert set(names["user_tower"]["inputs"]) == USER_INPUTS
    assert set(names["user_tower"]["outputs"]) == state | {"fingerprint"}
    assert set(names["score"]["inputs"]) == state | {"fingerprint", "candidate_item_id"}
    assert names["score"]["outputs"] == ["probabilities"]
    assert set(names["serving_default"]["inputs"]) == USER_INPUTS | {"candidate_item_id"}
    assert names["serving_default"]["outputs"] == ["probabilities"]


def test_wrong_fingerprint_is_rejected(fresh, exported):
    report = fresh["report"]
    assert report["din1"]["wrong_fingerprint"] == "InvalidArgumentError"
    assert report["dmgin"]["wrong_fingerprint"] == "InvalidArgumentError"
    assert report["cross_version"] == "InvalidArgumentError"  # din/1's state scored by din/2
    # and in this process too
    loaded = tf.saved_model.load(str(exported["din/1"]))
    state = loaded.signatures["user_tower"](**user_inputs(SPEC, random_features(SPEC, 2, 3, seed=1)))
    state["fingerprint"] = tf.zeros_like(state["fingerprint"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="fingerprint"):
        loaded.signatures["score"](**state, candidate_item_id=tf.constant([[1], [2]], tf.int64))


@pytest.mark.parametrize("key", ["din/1", "dmgin/1", "dmqn/1", "siren/1"])
def test_only_stock_ops(exported, key):
    assert non_stock_ops(exported[key]) == []


def test_dmqn_serving_graph_draws_no_noise(exported):
    # Gumbel noise is training-only: no random op anywhere in the exported graphs, and repeated
    # calls give identical states.
    graph_ops = set()
    loaded = tf.saved_model.load(str(exported["dmqn/1"]))
    for fn in loaded.signatures.values():
        graph_ops |= {op.type for op in fn.graph.get_operations()}
        for f in fn.graph.as_graph_def().library.function:
            graph_ops |= {node.op for node in f.node_def}
    assert "UnsortedSegmentMax" in graph_ops  # (the walk does reach the quantizer's ops)
    assert not {op for op in graph_ops if "Random" in op}, sorted(op for op in graph_ops if "Random" in op)
    user = user_inputs(SPEC, random_features(SPEC, 3, 12, seed=40))
    first, second = (loaded.signatures["user_tower"](**user) for _ in range(2))
    for k in first:
        np.testing.assert_array_equal(first[k].numpy(), second[k].numpy(), err_msg=k)


def test_item_group_table_lives_in_the_saved_model(fresh, exported):
    arrays, model = fresh["arrays"], exported["dmgin"]
    np.testing.assert_array_equal(arrays["dmgin/table"], TABLE)
    # Moving one item to another group inside the loaded SavedModel changes the scores exactly
    # as it does in the Keras model with the same new table.
    changed = arrays["dmgin/serving_default_new_table"]
    assert not np.allclose(changed[:, 0], arrays["dmgin/serving_default"][:, 0], atol=1e-6)
    x = user_inputs(SPEC, fresh["features"])
    model.item_group.table.assign(_new_table())
    try:
        expected = model.score(model.encode_user(x), fresh["candidates"]).numpy()
    finally:
        model.item_group.table.assign(TABLE)
    np.testing.assert_allclose(changed, expected, atol=1e-5)


def test_siren_content_tables_and_bucket_range_live_in_the_saved_model(exported):
    # the GSU's tables (content vectors, Semantic ID prefixes and level-1 codes) and the similarity
    # range set by adapt are SavedModel variables, and the GSU runs in the score graph (TopKV2)
    loaded = tf.saved_model.load(str(exported["siren/1"]))
    names = {v.name.split("/")[-1].split(":")[0]: v for v in loaded.model.variables}
    np.testing.assert_allclose(names["similarity_range"].numpy(), [-0.2, 0.9], atol=1e-6)
    content = exported["siren"].content
    for key in ("item_content", "item_semantic_prefix", "item_semantic_code_1"):
        assert key in names, sorted(names)
    np.testing.assert_array_equal(names["item_semantic_code_1"].numpy(), content.tables["semantic_code_1"].numpy())
    ops = set()
    for f in loaded.signatures["score"].graph.as_graph_def().library.function:
        ops |= {node.op for node in f.node_def}
    assert "TopKV2" in ops
