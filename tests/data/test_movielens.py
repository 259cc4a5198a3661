"""Tests for the MovieLens-100K stage (tfrec/data/movielens.py, pipelines/movielens.py)."""
import argparse
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

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
              max_history_length=None, skip_bad_rows=False)
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
    assert read(raw, "users") == {"user_id": [0, 1, 2], "user_segment": [1, 4, 8]}
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
