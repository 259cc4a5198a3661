"""ItemTable: validation of the raw columns, unknown rows of unlisted items, .npz round trips, statistics."""
import numpy as np
import pytest

from tfrec.data.item_table import ItemTable, column_statistics
from tfrec.data.schema import FeatureDef
from tfrec.data.spec import FeatureSpec

FEATURES = (
    FeatureDef("cat", "categorical", vocab_size=4),
    FeatureDef("hcat", "categorical", hash_buckets=10),
    FeatureDef("tags", "multi_categorical", vocab_size=6, max_len=3),
    FeatureDef("price", "numeric", transform="standardize"),
    FeatureDef("vec", "dense", dim=2),
)
SPEC = FeatureSpec(n_items=5, item_features=FEATURES)
ITEM_ID = [3, 0]
VALUES = {
    "cat": [2, 0],
    "hcat": [-7, 123456789012],
    "tags": [[5, 1], []],
    "price": [2.5, -1.0],
    "vec": [[1.0, 2.0], (3, 4)],
}


def _table(item_id=ITEM_ID, spec=SPEC, **changes):
    return ItemTable.from_columns(spec, np.asarray(item_id), {**VALUES, **changes}, source="items.parquet")


def test_from_columns_places_rows_and_fills_unknown():
    table = _table()
    assert table.n_items == 5
    assert table.n_missing == 3
    np.testing.assert_array_equal(table.columns["cat"], [0, -1, -1, 2, -1])
    np.testing.assert_array_equal(table.columns["hcat"], [123456789012, -1, -1, -7, -1])
    np.testing.assert_array_equal(table.columns["tags"],
                                  [[-1, -1, -1], [-1, -1, -1], [-1, -1, -1], [5, 1, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(table.columns["price"], [-1.0, 0, 0, 2.5, 0])
    np.testing.assert_array_equal(table.columns["vec"], [[3, 4], [0, 0], [0, 0], [1, 2], [0, 0]])
    assert {k: v.dtype for k, v in table.columns.items()} == {
        "cat": np.int64, "hcat": np.int64, "tags": np.int64, "price": np.float32, "vec": np.float32}


def test_every_item_listed_has_no_missing():
    table = _table(item_id=[0, 1, 2, 3, 4], cat=[0, 1, 2, 3, 0], hcat=[1] * 5, tags=[None, [], [0], [1, 2, 3], [4]],
                   price=[1.0] * 5, vec=[[0, 0]] * 5)
    assert table.n_missing == 0
    np.testing.assert_array_equal(table.columns["tags"][:2], [[-1, -1, -1]] * 2)  # None = an empty list


def test_empty_table_is_all_unknown():
    table = ItemTable.empty(SPEC)
    assert table.n_missing == 5
    np.testing.assert_array_equal(table.columns["cat"], [-1] * 5)
    np.testing.assert_array_equal(table.columns["vec"], np.zeros((5, 2)))


@pytest.mark.parametrize("item_id, changes, match", [
    ([3, 5], {}, r"row 1, item_id 5 is outside \[0, 5\)"),
    ([-1, 0], {}, r"row 0, item_id -1 is outside"),
    ([3, 3], {}, r"item_id 3 is listed 2 times"),
    ([3.0, 0.0], {}, r"column 'item_id' must hold integer item ids"),
    (ITEM_ID, {"cat": [2, 4]}, r"row 1 \(item_id 0\), feature 'cat': id 4 is outside \[0, 4\)"),
    (ITEM_ID, {"cat": [-1, 0]}, r"row 0 \(item_id 3\), feature 'cat': id -1"),
    (ITEM_ID, {"cat": [1.0, 2.0]}, r"row 0 \(item_id 3\), feature 'cat': categorical values must be integer ids"),
    (ITEM_ID, {"cat": [1, None]}, r"row 1 \(item_id 0\), feature 'cat'"),
    (ITEM_ID, {"tags": [[5, 1], [6]]}, r"row 1 \(item_id 0\), feature 'tags': id outside \[0, 6\)"),
    (ITEM_ID, {"tags": [[0, 1, 2, 3], []]}, r"row 0 \(item_id 3\), feature 'tags': 4 values but max_len is 3"),
    (ITEM_ID, {"tags": [[0.5], []]}, r"row 0 \(item_id 3\), feature 'tags': values must be integer ids"),
    (ITEM_ID, {"vec": [[1.0, 2.0], [1.0, 2.0, 3.0]]}, r"row 1 \(item_id 0\), feature 'vec'.*expected dim=2"),
    (ITEM_ID, {"vec": [[1.0, np.inf], [1.0, 2.0]]}, r"row 0 \(item_id 3\), feature 'vec': non-finite"),
    (ITEM_ID, {"vec": [None, [1.0, 2.0]]}, r"row 0 \(item_id 3\), feature 'vec': expected a list"),
    (ITEM_ID, {"price": [2.5, np.nan]}, r"row 1 \(item_id 0\), feature 'price': non-finite"),
    (ITEM_ID, {"price": [2.5, None]}, r"row 1 \(item_id 0\), feature 'price'"),
    (ITEM_ID, {"price": [2.5]}, r"column 'price' has 1 values for 2 items"),
])
def test_from_columns_validation(item_id, changes, match):
    with pytest.raises(ValueError, match=f"^items.parquet: {match}"):
        _table(item_id=item_id, **changes)


def test_missing_column_names_the_feature():
    values = {k: v for k, v in VALUES.items() if k != "tags"}
    with pytest.raises(ValueError, match="missing column 'tags'.*multi_categorical"):
        ItemTable.from_columns(SPEC, np.array(ITEM_ID), values, source="items.parquet")


def test_save_load_round_trip(tmp_path):
    table = _table()
    path = tmp_path / "item_features.npz"
    table.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["item_features.npz"]  # no temp file left
    loaded = ItemTable.load(path, SPEC)
    assert (loaded.n_items, loaded.n_missing) == (5, 3)
    assert list(loaded.columns) == [fd.name for fd in FEATURES]
    for name, column in table.columns.items():
        assert loaded.columns[name].dtype == column.dtype
        np.testing.assert_array_equal(loaded.columns[name], column)


def _replace(name, fd):
    return FeatureSpec(n_items=5, item_features=tuple(fd if f.name == name else f for f in FEATURES))


@pytest.mark.parametrize("spec, match", [
    (FeatureSpec(n_items=6, item_features=FEATURES), r"has 5 items but spec.json says n_items=6"),
    (FeatureSpec(n_items=5, item_features=FEATURES + (FeatureDef("year", "numeric"),)), r"'year' \(numeric\) is missing"),
    (_replace("vec", FeatureDef("vec", "dense", dim=3)), r"'vec' \(dense\) is float32 \(5, 2\), expected float32 \(5, 3\)"),
    (_replace("tags", FeatureDef("tags", "multi_categorical", vocab_size=6, max_len=4)), r"'tags' \(multi_categorical\) is int64 \(5, 3\), expected int64 \(5, 4\)"),
])
def test_load_with_another_spec_fails_clearly(tmp_path, spec, match):
    path = tmp_path / "item_features.npz"
    _table().save(path)
    with pytest.raises(ValueError, match=match):
        ItemTable.load(path, spec)


def test_load_rejects_a_changed_kind_with_the_same_shape(tmp_path):
    path = tmp_path / "item_features.npz"
    _table().save(path)
    with pytest.raises(ValueError, match="'cat'"):
        ItemTable.load(path, _replace("cat", FeatureDef("cat", "numeric")))


def test_statistics_over_a_fully_listed_column():
    table = _table(item_id=[0, 1, 2, 3, 4], cat=[0] * 5, hcat=[0] * 5, tags=[[]] * 5, vec=[[0, 0]] * 5,
                   price=[1.0, 2.0, 3.0, 4.0, 5.0])
    mean, std = table.statistics(SPEC.item_features[3])
    assert mean == pytest.approx(3.0)
    assert std == pytest.approx(np.sqrt(2.0))  # population std: mean of (4, 1, 0, 1, 4)


def test_column_statistics_constant_and_empty():
    fd = SPEC.item_features[3]
    assert column_statistics(np.full(4, 7.0, np.float32), fd) == (7.0, 1.0)
    assert column_statistics(np.zeros(0, np.float32), fd) == (0.0, 1.0)


def test_statistics_ignore_unlisted_items():
    mean, std = _table().statistics(SPEC.item_features[3])
    assert mean == pytest.approx(0.75)
    assert std == pytest.approx(1.75)


def test_from_parquet_reads_list_columns(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "item_features.parquet"
    pq.write_table(pa.table({"item_id": ITEM_ID, **VALUES, "tags": [[5, 1], None], "vec": [[1.0, 2.0], [3.0, 4.0]]}),
                   path)
    table = ItemTable.from_parquet(path, SPEC)
    expected = _table()
    assert table.n_missing == expected.n_missing
    for name, column in expected.columns.items():
        np.testing.assert_array_equal(table.columns[name], column)


def test_from_parquet_without_item_id_fails(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "item_features.parquet"
    pq.write_table(pa.table({"cat": [1]}), path)
    with pytest.raises(ValueError, match="missing column 'item_id'"):
        ItemTable.from_parquet(path, SPEC)
