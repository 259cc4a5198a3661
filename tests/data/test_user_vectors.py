"""UserVectors: the file (round trip, validation), the time-slice lookup, and the tf.data join."""
import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from tests.data.test_dataset import REQUESTS, SPEC, USERS, _examples
from tfrec.data.dataset import features_to_numpy, make_dataset
from tfrec.data.schema import SchemaError, feature_from_dict
from tfrec.data.spec import FeatureSpec
from tfrec.data.tfrecord import write_examples, write_user_histories
from tfrec.data.user_vectors import UserVectors, join_user_vectors
from tfrec.serving.requests import user_features

# Users 10 and 20 (users 30 and 99 have no row); slices at t = 10, 40, 100; D = 2.
# vectors[u, s] = [100 * row + 10 * s + 1, -(100 * row + 10 * s + 1)]
BOUNDARIES = [10, 40, 100]
ROWS = [10, 20]
VECTORS = np.array([[[100 * r + 10 * s + 1, -(100 * r + 10 * s + 1)] for s in range(3)] for r in range(2)],
                   np.float32)
# (user_id, request_timestamp) -> expected vector, by hand: the last slice with boundary <= r
TABLE = [
    ((10, 5), [0, 0]),          # before the first boundary: zeros
    ((10, 9), [0, 0]),
    ((10, 10), [1, -1]),        # exactly at a boundary: that slice (behaviors strictly before 10)
    ((10, 39), [1, -1]),
    ((10, 40), [11, -11]),
    ((10, 99), [11, -11]),
    ((10, 100), [21, -21]),
    ((10, 10 ** 9), [21, -21]),  # after the last boundary: the last slice
    ((20, 10), [101, -101]),
    ((20, 45), [111, -111]),
    ((30, 45), [0, 0]),         # no row: zeros
    ((99, 100), [0, 0]),
]


def _vectors(**overrides):
    fields = dict(user_id=ROWS, boundaries=BOUNDARIES, vectors=VECTORS, name="chime", meta={"t1": 10, "k": [32, 16]})
    return UserVectors(**{**fields, **overrides})


def _join(uv, pairs):
    features = {"user_id": tf.constant([u for u, _ in pairs], tf.int64),
                "request_timestamp": tf.constant([r for _, r in pairs], tf.int64)}
    return join_user_vectors(features, uv.tensors())["user_vector"].numpy()


# -- the file --------------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    uv = _vectors()
    uv.save(tmp_path / "chime.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chime.npz"]  # no temp file left, no suffix added
    back = UserVectors.load(tmp_path / "chime.npz")
    for field in ("user_id", "boundaries", "vectors"):
        np.testing.assert_array_equal(getattr(back, field), getattr(uv, field))
    assert back.user_id.dtype == np.int64 and back.boundaries.dtype == np.int64 and back.vectors.dtype == np.float32
    assert (back.name, back.meta, back.dim, back.n_slices, len(back)) == ("chime", {"t1": 10, "k": [32, 16]}, 2, 3, 2)


@pytest.mark.parametrize("overrides, field, match", [
    (dict(boundaries=[10, 100, 40]), "boundaries", "strictly increasing"),
    (dict(boundaries=[10, 10, 100]), "boundaries", "strictly increasing"),
    (dict(boundaries=[]), "boundaries", "S >= 1"),
    (dict(user_id=[10, 10]), "user_id", "unique"),
    (dict(user_id=[10, -2]), "user_id", ">= 0"),
    (dict(user_id=[10.0, 20.0]), "user_id", "integer"),
    (dict(vectors=VECTORS[:, :2]), "vectors", "expected"),
    (dict(vectors=VECTORS[..., :0]), "vectors", "D >= 1"),
    (dict(vectors=np.where(np.arange(2) == 1, np.nan, VECTORS)), "vectors", "NaN"),
    (dict(vectors=VECTORS.astype(np.int64)), "vectors", "floating"),
    (dict(meta={"t1": np.int64(3)}), "meta", "JSON"),
    (dict(name=""), "name", "non-empty"),
])
def test_invalid_fields_are_named(overrides, field, match):
    with pytest.raises(ValueError, match=match) as err:
        _vectors(**overrides)
    assert field in str(err.value)


def test_load_validates_the_file(tmp_path):
    good = dict(user_id=np.array(ROWS, np.int64), boundaries=np.array(BOUNDARIES, np.int64), vectors=VECTORS,
                info=np.array(json.dumps({"format": 1, "name": "x", "meta": {}})))
    cases = {
        "missing": ({k: v for k, v in good.items() if k != "vectors"}, "missing field"),
        "float64": ({**good, "vectors": VECTORS.astype(np.float64)}, r"'vectors' is float64, expected float32.*astype"),
        "int32": ({**good, "user_id": good["user_id"].astype(np.int32)}, "'user_id' is int32"),
        "unsorted": ({**good, "boundaries": np.array([10, 100, 40], np.int64)}, "'boundaries'.*strictly increasing"),
        "dup": ({**good, "user_id": np.array([7, 7], np.int64)}, "'user_id'.*unique"),
        "inf": ({**good, "vectors": np.full_like(VECTORS, np.inf)}, "'vectors'.*NaN/inf"),
        "info": ({**good, "info": np.array("{not json")}, "'info' is not JSON"),
    }
    for name, (arrays, match) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        with pytest.raises(ValueError, match=match) as err:
            UserVectors.load(path)
        assert str(path) in str(err.value), name
    with pytest.raises(FileNotFoundError, match="UserVectors"):
        UserVectors.load(tmp_path / "absent.npz")


# -- the lookup ------------------------------------------------------------------------------------
def test_time_slice_lookup_matches_the_hand_computed_table():
    uv = _vectors()
    pairs = [p for p, _ in TABLE]
    expected = np.array([v for _, v in TABLE], np.float32)
    np.testing.assert_array_equal(_join(uv, pairs), expected)
    np.testing.assert_array_equal(uv.lookup(*zip(*pairs)), expected)  # the numpy reference agrees


def test_lookup_without_users_gives_zeros():
    uv = UserVectors(user_id=np.zeros(0, np.int64), boundaries=[5], vectors=np.zeros((0, 1, 3), np.float32))
    np.testing.assert_array_equal(_join(uv, [(0, 4), (0, 6), (3, 100)]), np.zeros((3, 3), np.float32))


def test_join_works_inside_tf_data():
    uv = _vectors()
    pairs = [p for p, _ in TABLE]
    ds = tf.data.Dataset.from_tensor_slices({"user_id": np.array([u for u, _ in pairs], np.int64),
                                             "request_timestamp": np.array([r for _, r in pairs], np.int64)})
    ds = ds.batch(5).map(lambda f: join_user_vectors(f, uv.tensors()))
    got = np.concatenate([b["user_vector"].numpy() for b in ds])
    np.testing.assert_array_equal(got, np.array([v for _, v in TABLE], np.float32))


# -- make_dataset ----------------------------------------------------------------------------------
@pytest.fixture()
def files(tmp_path):
    write_user_histories(tmp_path / "hist.tfrec", SPEC, USERS)
    write_examples(tmp_path / "ex.tfrec", SPEC, _examples(REQUESTS), with_true_prob=True)
    return tmp_path


def _collect(dataset):
    """Every batch's user_id, request_timestamp, item_id (and user_vector) concatenated + the batch sizes."""
    batches = [(features_to_numpy(f), label.numpy()) for f, label in dataset]
    keys = {"user_id", "request_timestamp", "item_id", "user_vector"} & set(batches[0][0])
    return {k: np.concatenate([b[0][k] for b in batches]) for k in keys}, [len(b[1]) for b in batches]


def test_make_dataset_adds_the_user_vector(files):
    uv = _vectors()
    ds = make_dataset(files / "ex.tfrec", SPEC, history=files / "hist.tfrec", batch_size=4, user_vectors=uv)
    assert ds.element_spec[0]["user_vector"] == tf.TensorSpec([None, 2], tf.float32)
    got, _ = _collect(ds)
    np.testing.assert_array_equal(got["user_id"], [u for u, _ in REQUESTS])
    np.testing.assert_array_equal(got["user_vector"], uv.lookup(got["user_id"], got["request_timestamp"]))
    assert np.any(got["user_vector"] != 0) and np.any(np.all(got["user_vector"] == 0, axis=1))
    # the same spec with user_vector_dim = D reads the same
    spec = dataclasses.replace(SPEC, user_vector_dim=2)
    again, _ = _collect(make_dataset(files / "ex.tfrec", spec, history=files / "hist.tfrec", user_vectors=uv))
    np.testing.assert_array_equal(again["user_vector"], got["user_vector"])


def test_make_dataset_checks_the_user_vectors_against_the_spec(files):
    spec = dataclasses.replace(SPEC, user_vector_dim=3)
    with pytest.raises(ValueError, match="pass user_vectors="):
        make_dataset(files / "ex.tfrec", spec, history=files / "hist.tfrec")
    with pytest.raises(ValueError, match="D=2 but the spec declares user_vector_dim=3"):
        make_dataset(files / "ex.tfrec", spec, history=files / "hist.tfrec", user_vectors=_vectors())


def test_min_request_timestamp_keeps_the_later_examples_in_full_batches(files):
    ds = make_dataset(files / "ex.tfrec", SPEC, history=files / "hist.tfrec", batch_size=3, user_vectors=_vectors(),
                      min_request_timestamp=100)
    got, sizes = _collect(ds)
    kept = [(i, u, r) for i, (u, r) in enumerate(REQUESTS) if r >= 100]
    assert len(kept) < len(REQUESTS)
    np.testing.assert_array_equal(got["item_id"], [i for i, _, _ in kept])
    np.testing.assert_array_equal(got["request_timestamp"], [r for _, _, r in kept])
    assert sizes == [3, 1]
    # without user vectors too
    plain, _ = _collect(make_dataset(files / "ex.tfrec", SPEC, history=files / "hist.tfrec", min_request_timestamp=100))
    np.testing.assert_array_equal(plain["item_id"], [i for i, _, _ in kept])


# -- spec, schema, serving requests ------------------------------------------------------------------
def test_spec_user_vector_dim():
    spec = FeatureSpec(n_items=5, user_vector_dim=4)
    assert FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    old = {k: v for k, v in FeatureSpec(n_items=5).to_dict().items() if k != "user_vector_dim"}
    assert FeatureSpec.from_dict(old).user_vector_dim == 0  # spec.json written before user vectors
    assert spec.user_input_signature()["user_vector"] == tf.TensorSpec([None, 4], tf.float32, name="user_vector")
    assert "user_vector" not in FeatureSpec(n_items=5).user_input_signature()
    with pytest.raises(ValueError, match="user_vector_dim must be an int >= 0"):
        FeatureSpec(n_items=5, user_vector_dim=-1)
    with pytest.raises(SchemaError, match="reserved"):
        feature_from_dict("user", {"name": "user_vector", "kind": "numeric"})


def test_serving_request_carries_the_user_vector():
    spec = FeatureSpec(n_items=5, user_vector_dim=3)
    history = {"item_id": [1, 2], "behavior_type": [0, 1], "timestamp": [10, 20]}
    given = user_features(7, history, 30, spec=spec, user_vector=[0.5, -1.0, 2.0])
    assert given["user_vector"].dtype == np.float32 and given["user_vector"].shape == (1, 3)
    np.testing.assert_array_equal(user_features(7, history, 30, spec=spec)["user_vector"], np.zeros((1, 3)))
    assert set(given) == set(spec.user_input_signature())
    with pytest.raises(ValueError, match="user_vector_dim=3"):
        user_features(7, history, 30, spec=spec, user_vector=[1.0])
    with pytest.raises(ValueError, match="declares no user vector"):
        user_features(7, history, 30, spec=FeatureSpec(n_items=5), user_vector=[1.0])
