"""SessionSplit: a behavior history divided into sessions by time gaps (DSIN, Feng et al. 2019, sec. 4.1)."""
import tensorflow as tf

from tfrec.registry import register


@register
class SessionSplit(tf.keras.layers.Layer):
    """Session division layer (DSIN, Feng et al. 2019, sec. 4.1, eq. 1): sessions ``Q_k`` from time gaps.

    Reads a right-padded history (oldest -> newest) and returns, for each user, where its sessions
    lie in that history, as positions into ``L``:

    1. **No future behavior.** The history is cut at its first behavior at or after the request
       time (``t_i >= request_timestamp``), even if the reader already cut it. For a sorted history
       that drops exactly the behaviors at or after the request.
    2. **Window.** ``window`` N > 0 keeps only the N most recent behaviors left (0 = all of them).
    3. **Sessions.** A new session starts at the oldest kept behavior and wherever the gap to the
       previous behavior is strictly greater than ``gap_seconds``: two behaviors exactly
       ``gap_seconds`` apart share a session, ``gap_seconds + 1`` apart do not (DSIN's code:
       ``delta > 30 * 60``).
    4. **Short sessions.** Sessions with fewer than ``min_session_length`` behaviors are dropped
       (DSIN's code keeps sessions of > 2 behaviors, i.e. 3; default 1 keeps every session).
    5. **Truncation.** The ``max_sessions`` K most recent sessions are kept, most recent first
       (slot 0 = the current session); in each, its ``session_length`` T most recent behaviors, in
       chronological order (slot 0 = the oldest kept one), left-aligned: a session with ``n < T``
       behaviors fills slots ``0..n-1``, the rest is padding (position -1).

    Vectorised over the batch with stock ops (cumulative sums and ``searchsorted``), deterministic,
    ``O(B * L)`` memory: usable on whole lifelong histories.

    Args:
      max_sessions: K, the most recent sessions kept.
      session_length: T, the most recent behaviors kept in each session.
      gap_seconds: a gap strictly greater than this starts a new session. Default 1800 (30 min).
      min_session_length: sessions with fewer behaviors are dropped. Default 1 (none dropped).
      window: N, only the N most recent behaviors before the request are split; 0 = the whole
        history. Default 0.

    Input: dict with ``timestamp`` int ``[B, L]`` (epoch seconds, ascending), ``length`` int ``[B]``
      (valid behaviors per row) and ``request_timestamp`` int ``[B]``.
    Output: dict with ``positions`` int32 ``[B, K, T]`` (indices into ``L``; -1 = padding),
      ``mask`` float32 ``[B, K, T]`` (1 = a behavior) and ``session_mask`` float32 ``[B, K]``
      (1 = a session). Valid sessions come first: ``session_mask`` is a prefix of ones.
    """

    def __init__(self, max_sessions: int, session_length: int, gap_seconds: int = 1800,
                 min_session_length: int = 1, window: int = 0, **kwargs):
        super().__init__(**kwargs)
        if max_sessions < 1 or session_length < 1 or gap_seconds < 0 or min_session_length < 1 or window < 0:
            raise ValueError("SessionSplit needs max_sessions >= 1, session_length >= 1, gap_seconds >= 0, "
                             f"min_session_length >= 1 and window >= 0. Received: max_sessions={max_sessions}, "
                             f"session_length={session_length}, gap_seconds={gap_seconds}, "
                             f"min_session_length={min_session_length}, window={window}")
        self.max_sessions = int(max_sessions)
        self.session_length = int(session_length)
        self.gap_seconds = int(gap_seconds)
        self.min_session_length = int(min_session_length)
        self.window = int(window)

    def call(self, inputs):
        ts = tf.cast(inputs["timestamp"], tf.int64)
        ts = tf.pad(ts, [[0, 0], [0, tf.maximum(1 - tf.shape(ts)[1], 0)]])  # L >= 1 for searchsorted
        seq_len = tf.shape(ts)[1]
        request = tf.cast(inputs["request_timestamp"], tf.int64)[:, None]
        length = tf.clip_by_value(tf.cast(inputs["length"], tf.int32), 0, seq_len)[:, None]  # [B, 1]
        idx = tf.range(seq_len)[None, :]  # [1, L]
        # the cut: the first behavior at / after the request (within the length) ends the history
        late = (idx < length) & (ts >= request)
        end = tf.minimum(tf.reduce_min(tf.where(late, idx, seq_len), axis=1, keepdims=True), length)  # [B, 1]
        begin = tf.maximum(end - self.window, 0) if self.window else tf.zeros_like(end)
        valid = (idx >= begin) & (idx < end)  # [B, L], a contiguous run
        prev = tf.concat([ts[:, :1], ts[:, :-1]], axis=1)
        start = valid & ((idx == begin) | (ts - prev > self.gap_seconds))  # a session starts here
        cont = valid & ~start  # a behavior continuing the session before it
        qualify = start
        for j in range(1, self.min_session_length):  # >= m behaviors: the next m-1 continue it
            qualify &= tf.pad(cont[:, j:], [[0, 0], [0, j]])
        session_number = tf.cumsum(tf.cast(start, tf.int32), axis=1)  # [B, L], 1-based, constant after `end`
        kept_number = tf.cumsum(tf.cast(qualify, tf.int32), axis=1)
        count = kept_number[:, -1:]  # [B, 1] sessions kept
        # the k-th most recent kept session is the (count - k)-th (1-based) in chronological order
        rank = count - tf.range(self.max_sessions)[None, :]  # [B, K]
        session_valid = rank >= 1
        first = tf.searchsorted(kept_number, tf.maximum(rank, 1), side="left")  # [B, K] its first behavior
        first = tf.minimum(first, seq_len - 1)
        number = tf.gather(session_number, first, batch_dims=1)
        last = tf.minimum(tf.searchsorted(session_number, number + 1, side="left"), end)  # exclusive
        kept = tf.where(session_valid, tf.minimum(last - first, self.session_length), 0)  # [B, K]
        t = tf.range(self.session_length)[None, None, :]  # [1, 1, T]
        behavior = t < kept[:, :, None]  # [B, K, T]
        positions = tf.where(behavior, (last - kept)[:, :, None] + t, -1)
        return {"positions": positions, "mask": tf.cast(behavior, tf.float32),
                "session_mask": tf.cast(session_valid, tf.float32)}

    def get_config(self):
        return {**super().get_config(), "max_sessions": self.max_sessions, "session_length": self.session_length,
                "gap_seconds": self.gap_seconds, "min_session_length": self.min_session_length,
                "window": self.window}
