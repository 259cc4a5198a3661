"""One feature of every kind through writer -> reader -> model -> export -> a serving request with item ids only."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from pipelines import write_tfrecords
from pipelines.common import ITEM_FEATURES, load_item_table, load_spec, make_split_dataset, stage_args
from tfrec.data.item_content import ItemContent
from tfrec.data.tfrecord import RecordValidationError
from tfrec.export import export_saved_model
from tfrec.export.saved_model import non_stock_ops
from tfrec.grouping.kmeans import GroupTable
from tfrec.serving.requests import context_features, stack_features, user_features
from tfrec.testing import assert_saved_model_matches
from tfrec.training import build_model, compile_model

SCHEMA = """
user:
  - {name: age, kind: categorical, vocab_size: 5}
  - {name: tags, kind: multi_categorical, vocab_size: 6, max_len: 3}
  - {name: income, kind: numeric, transform: log1p}
context:
  - {name: hour, kind: categorical, vocab_size: 24}
  - {name: slot, kind: categorical, hash_buckets: 7}
item:
  - {name: category, kind: categorical, vocab_size: 4}
  - {name: genres, kind: multi_categorical, vocab_size: 5, max_len: 3}
  - {name: price, kind: numeric, transform: standardize}
  - {name: mm, kind: dense, dim: 3}
behavior:
  - {name: location, kind: categorical, vocab_size: 9}
"""
N_ITEMS, N_LISTED, N_USERS = 30, 25, 12  # items 25..29 are not in item_features.parquet: unknown features
T0 = 1_700_000_000


def _write_raw(raw, rng):
    raw.mkdir(parents=True)
    (raw / "schema.yaml").write_text(SCHEMA)
    (raw / "dataset.json").write_text(json.dumps({"name": "schema-test", "n_items": N_ITEMS,
                                                  "max_history_length": 8}))
    lengths = rng.integers(0, 15, N_USERS)
    user = np.repeat(np.arange(N_USERS), lengths)
    n = len(user)
    pq.write_table(pa.table({
        "user_id": user, "item_id": rng.integers(0, N_ITEMS, n), "behavior_type": rng.integers(0, 6, n),
        "timestamp": T0 + rng.integers(0, 10_000, n), "duration": rng.exponential(5.0, n),
        "amount": np.zeros(n), "location": rng.integers(0, 9, n)}), raw / "behaviors.parquet")
    tags = [list(rng.integers(0, 6, rng.integers(0, 4))) for _ in range(N_USERS)]
    tags[0] = []  # an empty multi-valued feature
    pq.write_table(pa.table({"user_id": np.arange(N_USERS), "age": rng.integers(0, 5, N_USERS),
                             "tags": pa.array(tags, pa.list_(pa.int64())),
                             "income": rng.exponential(1000.0, N_USERS)}), raw / "users.parquet")
    genres = [list(rng.integers(0, 5, rng.integers(0, 4))) for _ in range(N_LISTED)]
    pq.write_table(pa.table({"item_id": np.arange(N_LISTED), "category": rng.integers(0, 4, N_LISTED),
                             "genres": pa.array(genres, pa.list_(pa.int64())),
                             "price": rng.exponential(20.0, N_LISTED),
                             "mm": pa.array([list(v) for v in rng.normal(size=(N_LISTED, 3))],
                                            pa.list_(pa.float32()))}), raw / "item_features.parquet")
    for split, start in (("train", 5_000), ("test", 10_000)):
        m = 40
        pq.write_table(pa.table({
            "user_id": rng.integers(0, N_USERS + 1, m),  # user 12 has no history: cold start
            "item_id": rng.integers(0, N_ITEMS, m), "request_timestamp": T0 + start + rng.integers(0, 5_000, m),
            "label": rng.integers(0, 2, m), "hour": rng.integers(0, 24, m),
            "slot": rng.integers(-50, 50, m)}), raw / f"{split}.parquet")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("schema-data")
    _write_raw(root / "raw", np.random.default_rng(0))
    write_tfrecords.run(stage_args(write_tfrecords, ["--data", root]))
    return root


def test_spec_json_records_the_schema_and_measured_statistics(data):
    spec = load_spec(data)
    assert [f.name for f in spec.user_features] == ["age", "tags", "income"]
    prices = pq.read_table(data / "raw" / "item_features.parquet").column("price").to_numpy()
    price = spec.item_features[2]
    np.testing.assert_allclose([price.mean, price.std], [prices.mean(), prices.std()], rtol=1e-6)  # float32 table
    table = load_item_table(data, spec)
    assert table.n_missing == N_ITEMS - N_LISTED and (data / ITEM_FEATURES).exists()
    np.testing.assert_array_equal(table.columns["category"][N_LISTED:], -1)


def test_reader_carries_user_context_and_behavior_features(data):
    spec = load_spec(data)
    raw = data / "raw"
    users = pq.read_table(raw / "users.parquet").to_pylist()
    train = pq.read_table(raw / "train.parquet").to_pylist()
    behaviors = {k: np.asarray(v) for k, v in pq.read_table(raw / "behaviors.parquet").to_pydict().items()}
    features, _ = next(iter(make_split_dataset(data, "train", spec, batch_size=40)))
    for i, example in enumerate(train):
        assert int(features["hour"][i]) == example["hour"] and int(features["slot"][i]) == example["slot"]
        u = example["user_id"]
        if u == N_USERS:  # cold start: unknown user features
            assert int(features["age"][i]) == -1 and (features["tags"][i].numpy() == -1).all()
            assert int(features["hist_length"][i]) == 0
            continue
        assert int(features["age"][i]) == users[u]["age"]
        tags = users[u]["tags"]
        np.testing.assert_array_equal(features["tags"][i], tags + [-1] * (3 - len(tags)))
        assert float(features["income"][i]) == pytest.approx(users[u]["income"], rel=1e-6)
        rows = np.flatnonzero((behaviors["user_id"] == u) & (behaviors["timestamp"] < example["request_timestamp"]))
        rows = rows[np.argsort(behaviors["timestamp"][rows], kind="stable")][-spec.max_history_length:]
        n = int(features["hist_length"][i])
        assert n == len(rows)
        np.testing.assert_array_equal(features["hist_location"][i, :n], behaviors["location"][rows])


@pytest.fixture(scope="module")
def exported(data, tmp_path_factory):
    spec = load_spec(data)
    items = load_item_table(data, spec)
    groups = GroupTable(table=(np.arange(N_ITEMS) % 3 + 1).astype(np.int32), centroids=np.zeros((3, 2), np.float32),
                        n_groups=4, report={})
    base = tmp_path_factory.mktemp("schema-export")
    out = {}
    # SIREN reads its content vectors from the declared dense item feature `mm` (no Semantic IDs here)
    extra = {"siren": {"content_feature": "mm", "semantic_id": False, "history_length": 8, "gsu_k": 3}}
    for name in ("din", "dmgin", "dmqn", "siren"):
        model = build_model(name, spec, {"embedding_dim": 4, **extra.get(name, {})}, groups=groups, item_table=items,
                            item_content=ItemContent(), train_data=make_split_dataset(data, "train", spec, batch_size=16))
        model.adapt(make_split_dataset(data, "train", spec, batch_size=16))
        compile_model(model, 1e-2)
        model.fit(make_split_dataset(data, "train", spec, batch_size=16, shuffle=True), epochs=1, verbose=0)
        out[name] = (model, export_saved_model(model, spec, base, name))
    return spec, out


@pytest.mark.parametrize("name", ["din", "dmgin", "dmqn", "siren"])
def test_export_matches_keras_with_oov_items_and_categories(exported, data, name):
    spec, models = exported
    model, version_dir = models[name]
    features, _ = next(iter(make_split_dataset(data, "test", spec, batch_size=40)))
    features = {k: v.numpy() for k, v in features.items()}
    features["age"][:3] = [7, -1, 123]  # unknown categories -> the OOV row
    features["tags"][3] = [-1, -1, -1]  # an empty list
    features["tags"][4] = [99, 1, -1]  # an unknown id inside a list
    candidates = np.tile([[0, 27, -1, N_ITEMS, 10**9]], [len(features["user_id"]), 1])  # 27: unlisted; 3 OOV ids
    result = assert_saved_model_matches(model, spec, version_dir, features, candidates)
    assert np.isfinite(result["score"]).all()
    assert non_stock_ops(version_dir) == []


@pytest.mark.parametrize("name", ["din", "dmgin", "dmqn", "siren"])
def test_serving_request_with_item_ids_only(exported, name):
    """The request builder + the SavedModel alone (no item table beside it) = the Keras model."""
    spec, models = exported
    model, version_dir = models[name]
    loaded = tf.saved_model.load(str(version_dir))
    history = {"item_id": [3, 28, 7], "behavior_type": [1, 2, 0], "timestamp": [T0, T0 + 5, T0 + 9],
               "location": [4, 8, 2]}
    rows = [user_features(1, history, T0 + 100, spec.max_history_length, profile={"age": 2, "tags": [1, 5]},
                          spec=spec),
            user_features(2, {}, T0 + 100, spec.max_history_length, spec=spec)]  # cold: unknown profile
    x = stack_features(rows)
    ctx = stack_features([context_features({"hour": 13, "slot": -3}, spec), context_features({}, spec)])
    assert sorted(x) == sorted(spec.user_input_signature()) and sorted(ctx) == ["hour", "slot"]
    candidates = np.array([[0, 5, 29], [1, 2, 3]], np.int64)
    served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in {**x, **ctx}.items()},
                                                  candidate_item_id=tf.constant(candidates))["probabilities"]
    expected = model.score(model.encode_user(x), candidates, ctx)
    np.testing.assert_allclose(served.numpy(), expected.numpy(), atol=1e-5)


def test_item_table_is_a_saved_model_variable(exported, data):
    spec, models = exported
    _, version_dir = models["din"]
    table = load_item_table(data, spec)
    prefix = str(version_dir / "variables" / "variables")
    values = [np.asarray(tf.train.load_variable(prefix, name)) for name, _ in tf.train.list_variables(prefix)
              if "OBJECT_GRAPH" not in name]
    for feature in ("category", "mm"):  # the table + its unknown row, as SavedModel variables
        column = table.columns[feature]
        expected = np.concatenate([column, np.full((1,) + column.shape[1:], -1 if feature == "category" else 0)])
        assert any(v.shape == expected.shape and np.array_equal(v, expected) for v in values), feature
    meta = json.loads((version_dir / "assets.extra" / "tfrec_export.json").read_text())
    assert meta["item_table"] == {"n_items": N_ITEMS, "features": ["category", "genres", "price", "mm"]}
    assert meta["context_keys"] == ["hour", "slot"]


def test_a_record_that_disagrees_with_the_schema_names_record_and_field(tmp_path):
    rng = np.random.default_rng(1)
    _write_raw(tmp_path / "raw", rng)
    users = pq.read_table(tmp_path / "raw" / "users.parquet").to_pydict()
    users["tags"][4] = [1, 2, 3, 4]  # max_len is 3
    pq.write_table(pa.table({**users, "tags": pa.array(users["tags"], pa.list_(pa.int64()))}),
                   tmp_path / "raw" / "users.parquet")
    with pytest.raises(RecordValidationError, match=r"field 'tags': 4 values but the schema's max_len is 3"):
        write_tfrecords.run(stage_args(write_tfrecords, ["--data", tmp_path]))
    items = pq.read_table(tmp_path / "raw" / "item_features.parquet").to_pydict()
    items["category"][6] = 4  # vocab_size is 4
    pq.write_table(pa.table({**items, "genres": pa.array(items["genres"], pa.list_(pa.int64())),
                             "mm": pa.array(items["mm"], pa.list_(pa.float32()))}),
                   tmp_path / "raw" / "item_features.parquet")
    with pytest.raises(ValueError, match=r"row 6 \(item_id 6\), feature 'category': id 4 is outside \[0, 4\)"):
        write_tfrecords.run(stage_args(write_tfrecords, ["--data", tmp_path]))
    assert not (tmp_path / "user_histories.tfrecord").exists()  # nothing written


def test_grpc_round_trip_through_tfrec_serve(exported, tmp_path):
    """tfrec serve + the client (cache -> user_tower -> score with context) = the Keras model."""
    from tfrec.cache import SQLiteCache
    from tfrec.serving.client import ServingClient
    from tfrec.serving.process import ServerProcess

    spec, models = exported
    model, version_dir = models["dmgin"]
    history = {"item_id": [3, 28, 7], "behavior_type": [1, 2, 0], "timestamp": [T0, T0 + 5, T0 + 9],
               "location": [4, 8, 2]}
    profile, context, candidates = {"age": 3, "tags": [2], "income": 50.0}, {"hour": 7, "slot": 11}, [0, 26, 9]
    with ServerProcess(["--model-base-path", str(version_dir.parent.parent)], log_path=tmp_path / "serve.log") as server, \
            ServingClient(server.target, "dmgin", SQLiteCache(tmp_path / "state.db"), spec=spec,
                          max_history_length=spec.max_history_length) as client:
        first, (_, source1) = client.score_with_source(5, history, candidates, profile, T0 + 100, context)
        second, (_, source2) = client.score_with_source(5, history, candidates, profile, T0 + 100, context)
        x = user_features(5, history, T0 + 100, spec.max_history_length, profile=profile, spec=spec)
        ctx = context_features(context, spec)
    expected = model.score(model.encode_user(x), np.array([candidates]), ctx).numpy()[0]
    assert (source1, source2) == ("user_tower", "cache")
    np.testing.assert_allclose(first, expected, atol=1e-5)
    np.testing.assert_array_equal(first, second)
