"""SessionSplit (DSIN sec. 4.1): hand-made timestamps and a plain-Python reference."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.session_split import SessionSplit
from tfrec.testing import assert_layer_config_roundtrip

REQUEST = 1_000_000


def split(timestamps, request=REQUEST, length=None, **kwargs):
    """SessionSplit on one row (or rows of equal width) -> (positions, mask, session_mask) as numpy."""
    ts = np.atleast_2d(np.asarray(timestamps, np.int64))
    if length is None:
        length = [ts.shape[1]] * ts.shape[0]
    layer = SessionSplit(**{"max_sessions": 3, "session_length": 4, **kwargs})
    out = layer({"timestamp": tf.constant(ts), "length": tf.constant(length, tf.int32),
                 "request_timestamp": tf.constant(np.broadcast_to(request, ts.shape[:1]), tf.int64)})
    return out["positions"].numpy(), out["mask"].numpy(), out["session_mask"].numpy()


def sessions_of(positions):
    """Row 0's sessions as lists of positions (padding dropped)."""
    return [[int(p) for p in row if p >= 0] for row in positions[0]]


def reference(ts, length, request, k, t, gap, min_len=1, window=0):
    """Plain Python: cut at the first behavior at/after the request, window, split, filter, truncate."""
    hist = []
    for i in range(length):
        if ts[i] >= request:
            break
        hist.append(i)
    if window:
        hist = hist[-window:]
    sessions = []
    for i in hist:
        if sessions and ts[i] - ts[sessions[-1][-1]] <= gap:
            sessions[-1].append(i)
        else:
            sessions.append([i])
    sessions = [s for s in sessions if len(s) >= min_len][::-1][:k]
    out = np.full((k, t), -1)
    for j, s in enumerate(sessions):
        out[j, :min(len(s), t)] = s[-t:]
    return out


def test_gap_of_exactly_gap_seconds_stays_in_the_session():
    base = REQUEST - 100_000
    # gaps: 1800 (same session), 1801 (new session), 60 (same)
    ts = [base, base + 1800, base + 3601, base + 3661]
    assert sessions_of(split(ts)[0]) == [[2, 3], [0, 1], []]
    # one second less / more on the first gap
    assert sessions_of(split([base, base + 1801, base + 3602])[0]) == [[2], [1], [0]]
    assert sessions_of(split([base, base + 1799, base + 3599])[0]) == [[0, 1, 2], [], []]
    # another gap_seconds
    assert sessions_of(split(ts, gap_seconds=60)[0]) == [[2, 3], [1], [0]]


def test_behaviors_at_or_after_the_request_are_dropped():
    ts = [REQUEST - 500, REQUEST - 400, REQUEST, REQUEST + 10]
    assert sessions_of(split(ts)[0]) == [[0, 1], [], []]
    # an unsorted history: the first behavior at / after the request ends it
    assert sessions_of(split([REQUEST - 500, REQUEST + 5, REQUEST - 300])[0]) == [[0], [], []]
    # everything in the future: no session
    positions, mask, session_mask = split([REQUEST, REQUEST + 1])
    assert (positions == -1).all() and mask.sum() == 0 and session_mask.sum() == 0


def test_most_recent_sessions_first_truncation_and_padding():
    hour = 3600
    base = REQUEST - 10 * hour
    # sessions of sizes 2, 6, 1, 3 (oldest -> newest)
    ts = [base, base + 10,
          base + hour, base + hour + 1, base + hour + 2, base + hour + 3, base + hour + 4, base + hour + 5,
          base + 3 * hour,
          base + 5 * hour, base + 5 * hour + 30, base + 5 * hour + 60]
    positions, mask, session_mask = split(ts)  # K = 3, T = 4
    assert positions.shape == (1, 3, 4) and positions.dtype == np.int32
    # newest first; the 6-behavior session keeps its 4 most recent, oldest -> newest; the oldest session is cut
    assert positions[0].tolist() == [[9, 10, 11, -1], [8, -1, -1, -1], [4, 5, 6, 7]]
    assert mask[0].tolist() == [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]]
    assert session_mask[0].tolist() == [1, 1, 1]
    # fewer sessions than K: padding sessions at the end
    positions, mask, session_mask = split(ts, max_sessions=6)
    assert session_mask[0].tolist() == [1, 1, 1, 1, 0, 0]
    assert (positions[0, 4:] == -1).all() and mask[0, 4:].sum() == 0
    # min_session_length 3 (DSIN's code): the 1- and 2-behavior sessions are skipped
    assert sessions_of(split(ts, min_session_length=3)[0]) == [[9, 10, 11], [4, 5, 6, 7], []]
    # window: the 5 most recent behaviors only (the 6-behavior session keeps its last one)
    assert sessions_of(split(ts, window=5)[0]) == [[9, 10, 11], [8], [7]]


def test_padding_and_empty_histories():
    base = REQUEST - 1000
    ts = np.array([[base, base + 1, base + 2, 0, 0],  # length 3: garbage after it
                   [base - 5000, base, 7, 7, 7],  # length 2, two sessions
                   [base, base, base, base, base]])  # length 0
    positions, mask, session_mask = split(ts, length=[3, 2, 0])
    assert positions[0].tolist() == [[0, 1, 2, -1], [-1] * 4, [-1] * 4]
    assert positions[1].tolist() == [[1, -1, -1, -1], [0, -1, -1, -1], [-1] * 4]
    assert (positions[2] == -1).all() and mask[2].sum() == 0 and session_mask[2].sum() == 0
    # a zero-width history (L = 0)
    positions, mask, session_mask = split(np.zeros((2, 0), np.int64), length=[0, 0])
    assert positions.shape == (2, 3, 4) and (positions == -1).all() and session_mask.sum() == 0
    # the length is capped at L
    assert sessions_of(split([base, base + 1], length=[9])[0]) == [[0, 1], [], []]


@pytest.mark.parametrize("min_len,window", [(1, 0), (2, 0), (1, 7), (3, 11)])
def test_matches_the_plain_reference(min_len, window):
    rng = np.random.default_rng(min_len + window)
    b, L = 16, 24
    gaps = rng.choice([1, 60, 1799, 1800, 1801, 7200], size=(b, L))
    ts = REQUEST - 200_000 + np.cumsum(gaps, axis=1)
    request = ts[np.arange(b), rng.integers(0, L, b)] + rng.integers(0, 2, b)  # sometimes equal to a behavior
    length = rng.integers(0, L + 1, b)
    layer = SessionSplit(4, 3, gap_seconds=1800, min_session_length=min_len, window=window)
    out = layer({"timestamp": tf.constant(ts), "length": tf.constant(length, tf.int32),
                 "request_timestamp": tf.constant(request)})
    for i in range(b):
        expected = reference(ts[i], length[i], request[i], 4, 3, 1800, min_len, window)
        np.testing.assert_array_equal(out["positions"].numpy()[i], expected, err_msg=f"row {i}")
        np.testing.assert_array_equal(out["mask"].numpy()[i], expected >= 0)
        np.testing.assert_array_equal(out["session_mask"].numpy()[i], (expected >= 0).any(-1))


def test_long_histories_in_a_graph_and_config_round_trip():
    rng = np.random.default_rng(0)
    ts = REQUEST - 10_000_000 + np.cumsum(rng.choice([30, 90, 4000], size=(4, 10_000)), axis=1)
    inputs = {"timestamp": tf.constant(ts), "length": tf.constant([10_000, 5000, 1, 0], tf.int32),
              "request_timestamp": tf.constant([REQUEST] * 4, tf.int64)}
    layer = SessionSplit(8, 5, gap_seconds=1800, min_session_length=2, window=3000)
    assert_layer_config_roundtrip(layer, inputs, expected_shapes={
        "positions": (4, 8, 5), "mask": (4, 8, 5), "session_mask": (4, 8)})
    graph = tf.function(layer)(inputs)
    eager = layer(inputs)
    for key in eager:
        np.testing.assert_array_equal(graph[key].numpy(), eager[key].numpy())
    for i, n in enumerate([10_000, 5000]):
        np.testing.assert_array_equal(eager["positions"].numpy()[i],
                                      reference(ts[i], n, REQUEST, 8, 5, 1800, 2, 3000))


def test_argument_errors():
    with pytest.raises(ValueError, match="max_sessions=0"):
        SessionSplit(0, 4)
    with pytest.raises(ValueError, match="min_session_length=0"):
        SessionSplit(2, 4, min_session_length=0)
