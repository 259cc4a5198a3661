"""ItemContent (content vectors + Semantic IDs per item), normalize_rows, and SIREN's exact prefix ids (eq. 2)."""
import warnings

import numpy as np
import pytest

from tfrec.data.item_content import ItemContent, normalize_rows, prefix_table
from tfrec.grouping import save_semantic_ids


# -- from_arrays -------------------------------------------------------------------------------
def test_from_arrays_places_rows_by_item_id_and_fills_the_rest():
    vectors = np.array([[1, 2], [3, 4], [5, 6]], np.float64)
    codes = np.array([[1, 2], [3, 0]], np.int64)
    content = ItemContent.from_arrays(5, vectors, np.array([3, 0, 4]), codes, np.array([2, 0]))
    assert content.vectors.dtype == np.float32 and content.codes.dtype == np.int32
    np.testing.assert_array_equal(content.vectors, [[3, 4], [0, 0], [0, 0], [1, 2], [5, 6]])
    np.testing.assert_array_equal(content.codes, [[3, 0], [-1, -1], [1, 2], [-1, -1], [-1, -1]])
    assert content.codebook_size == 4  # the largest code + 1 when not given


def test_from_arrays_defaults():
    # no item ids: row i is item i, items past the rows are filled
    content = ItemContent.from_arrays(3, vectors=[[1.0], [2.0]], codes=[[0, 1]], codebook_size=8)
    np.testing.assert_array_equal(content.vectors, [[1], [2], [0]])
    np.testing.assert_array_equal(content.codes, [[0, 1], [-1, -1], [-1, -1]])
    assert content.codebook_size == 8
    only_vectors = ItemContent.from_arrays(2, vectors=np.ones((2, 3)))
    assert only_vectors.codes is None and only_vectors.codebook_size == 0
    # a codebook_size without codes means nothing
    assert ItemContent.from_arrays(2, codebook_size=5) == ItemContent(None, None, 0)


V = np.ones((2, 2), np.float32)
C = np.array([[0, 1], [2, 3]], np.int32)


@pytest.mark.parametrize("kwargs, match", [
    ({"vectors": V, "vector_item_id": [1, 1]}, "vectors: duplicate item ids"),
    ({"codes": C, "code_item_id": [3, 3]}, "codes: duplicate item ids"),
    ({"vectors": V, "vector_item_id": [0, 4]}, r"vectors: item ids must lie in \[0, 4\)"),
    ({"codes": C, "code_item_id": [-1, 0]}, r"codes: item ids must lie in \[0, 4\)"),
    ({"vectors": np.ones((5, 2))}, r"vectors: item ids must lie in \[0, 4\)"),  # more rows than items
    ({"vectors": V, "vector_item_id": [0, 1, 2]}, "vectors: item_id must be 1-D with one entry per row"),
    ({"codes": C, "code_item_id": [[0], [1]]}, "codes: item_id must be 1-D with one entry per row"),
    ({"vectors": np.array([[1.0, np.nan], [0.0, 1.0]])}, "content vectors hold NaN or inf"),
    ({"vectors": np.array([[1.0, np.inf], [0.0, 1.0]])}, "content vectors hold NaN or inf"),
    ({"vectors": np.ones(3)}, r"content vectors must be \[N, D\]"),
    ({"vectors": np.ones((2, 0))}, r"content vectors must be \[N, D\] with D >= 1"),
    ({"codes": np.array([[0, -2], [1, 1]])}, "Semantic ID codes must be >= 0"),
    ({"codes": C.astype(np.float32)}, r"Semantic ID codes must be integer \[N, M\]"),
    ({"codes": np.array([0, 1])}, r"Semantic ID codes must be integer \[N, M\]"),
    ({"codes": C, "codebook_size": 3}, "codebook_size=3 does not cover the largest code 3"),
])
def test_from_arrays_rejects_bad_input_naming_the_array(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ItemContent.from_arrays(4, **kwargs)


# -- load ---------------------------------------------------------------------------------------
ITEM_IDS = np.array([4, 1, 2])
EMBEDDING = np.array([[1, 0, 0], [0, 2, 0], [0, 0, 3]], np.float32)
SEM_IDS = np.array([2, 0])
SEM_CODES = np.array([[5, 1], [0, 7]], np.int32)


def _write(data_dir, items=True, sem=True, report=None):
    if items:
        (data_dir / "raw").mkdir(parents=True)
        np.savez(data_dir / "raw" / "items.npz", item_id=ITEM_IDS, embedding=EMBEDDING,
                 topic=np.zeros(3, np.int64))
    if sem:
        save_semantic_ids(data_dir / "semantic_ids.npz", SEM_IDS, SEM_CODES,
                          {"codebook_size": 16} if report is None else report)
    return data_dir


def test_load_both_tables(tmp_path):
    content = ItemContent.load(_write(tmp_path), n_items=6)
    expected_vectors = np.zeros((6, 3), np.float32)
    expected_vectors[ITEM_IDS] = EMBEDDING
    np.testing.assert_array_equal(content.vectors, expected_vectors)
    np.testing.assert_array_equal(content.codes, [[0, 7], [-1, -1], [5, 1], [-1, -1], [-1, -1], [-1, -1]])
    assert content.codebook_size == 16  # from the table's report, not the largest code


def test_load_without_codebook_size_in_the_report(tmp_path):
    assert ItemContent.load(_write(tmp_path, report={}), n_items=6).codebook_size == 8


@pytest.mark.parametrize("items, sem", [(True, False), (False, True), (False, False)])
def test_load_with_a_table_absent(tmp_path, items, sem):
    content = ItemContent.load(_write(tmp_path, items=items, sem=sem), n_items=6)
    assert (content.vectors is not None) == items
    assert (content.codes is not None) == sem
    assert content.codebook_size == (16 if sem else 0)


def test_load_checks_ids_against_n_items(tmp_path):
    with pytest.raises(ValueError, match=r"vectors: item ids must lie in \[0, 4\)"):
        ItemContent.load(_write(tmp_path, sem=False), n_items=4)


# -- normalize_rows -----------------------------------------------------------------------------
def test_normalize_rows_zero_rows_stay_zero():
    x = np.array([[3, 4], [0, 0], [-2, 0]], np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero warning either
        out = normalize_rows(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0, 0], [-1, 0]], atol=1e-7)
    batched = normalize_rows(np.arange(12, dtype=np.float32).reshape(2, 2, 3))  # rows along the last axis
    np.testing.assert_allclose(np.linalg.norm(batched.reshape(-1, 3)[1:], axis=-1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(batched[0, 0, 0], 0.0)


# -- prefix_table (SIREN eq. 2) ----------------------------------------------------------------
CODES = np.array([[0, 1, 2],
                  [0, 1, 3],
                  [0, 2, 2],
                  [1, 1, 2],
                  [-1, -1, -1]])


def _check_exact_prefix_ids(codes, depth, ids, num_prefixes):
    """ids[i, j-1] identifies the prefix (c_i^1..c_i^j) exactly: one id per distinct prefix, all depths distinct."""
    assert ids.shape == (len(codes), depth) and ids.dtype == np.int32
    known = np.all(codes >= 0, axis=1)
    assert np.all(ids[~known] == -1)
    prefix_of_id = {}
    for i in np.flatnonzero(known):
        for j in range(1, depth + 1):
            prefix = tuple(codes[i, :j])  # the tuple length carries the depth
            assert prefix_of_id.setdefault(int(ids[i, j - 1]), prefix) == prefix, f"id {ids[i, j - 1]} shared"
    assert len(set(prefix_of_id.values())) == len(prefix_of_id)  # one id per prefix
    assert sorted(prefix_of_id) == list(range(num_prefixes))  # dense in [0, num_prefixes)
    for j in range(1, depth):  # depth-1 prefixes first, then depth 2, ...
        assert ids[known, j - 1].max() < ids[known, j].min()


@pytest.mark.parametrize("depth, num_prefixes", [(1, 2), (2, 5), (3, 9)])
def test_prefix_table_hand_built(depth, num_prefixes):
    ids, n = prefix_table(CODES, depth)
    assert n == num_prefixes  # {0, 1}; + {(0,1), (0,2), (1,1)}; + 4 distinct full codes
    _check_exact_prefix_ids(CODES, depth, ids, n)
    assert ids[0, 0] == ids[1, 0] == ids[2, 0] != ids[3, 0]  # level 1
    if depth >= 2:
        assert ids[0, 1] == ids[1, 1]  # (0, 1) shared
        assert ids[0, 1] != ids[2, 1]  # (0, 1) vs (0, 2)
        assert ids[0, 1] != ids[3, 1]  # level-2 code 1 under level-1 codes 0 and 1
        assert ids[3, 0] != ids[0, 1]  # code 1 at level 1 vs code 1 at level 2
    if depth == 3:
        assert len(set(ids[:4, 2])) == 4  # (0,1,2), (0,1,3), (0,2,2), (1,1,2): the same last code 2 thrice
        assert ids[0, 2] != ids[0, 1] and ids[0, 2] != ids[0, 0]


def test_prefix_table_random_codes():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 3, size=(200, 4))
    codes[rng.random(200) < 0.1] = -1
    for depth in (1, 2, 4):
        ids, n = prefix_table(codes, depth)
        _check_exact_prefix_ids(codes, depth, ids, n)
        known = codes[:, 0] >= 0
        assert n == sum(len({tuple(c[:j]) for c in codes[known]}) for j in range(1, depth + 1))


def test_prefix_table_without_any_code():
    ids, n = prefix_table(np.full((3, 2), -1), 2)
    assert n == 0
    np.testing.assert_array_equal(ids, np.full((3, 2), -1))


@pytest.mark.parametrize("codes, depth", [(CODES, 0), (CODES, 4), (CODES[:, 0], 1)])
def test_prefix_table_depth_out_of_range(codes, depth):
    with pytest.raises(ValueError, match=r"prefix depth must lie in \[1, M=.*Received: depth="):
        prefix_table(codes, depth)
