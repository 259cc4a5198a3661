"""encode_state / decode_state: exact round trips, and clean errors on damaged bytes."""
import numpy as np
import pytest

from tests.cache import assert_states_equal, mixed_state
from tfrec.cache import decode_state, encode_state


def test_round_trip_keeps_values_dtypes_and_shapes():
    state = mixed_state()
    state.update({
        "big_endian": np.arange(6, dtype=">f4").reshape(2, 3),
        "transposed": np.arange(12, dtype=np.int16).reshape(3, 4).T,  # not C-contiguous
        "unicode": np.array(["a", "bc"]),
        "raw": np.array([b"\x00\xff", b"z"]),
        "unsigned": np.array([0, 2**64 - 1], np.uint64),
        "complex": np.array([1 + 2j], np.complex64),
        "python_list": [1.5, 2.5],
    })
    decoded = decode_state(encode_state(state))
    assert_states_equal(decoded, state)
    assert decoded["fingerprint"].shape == ()
    decoded["group_states"][0, 0] = 42.0  # decoded arrays are writable copies


def test_empty_state_round_trips():
    assert decode_state(encode_state({})) == {}


def test_every_truncation_is_a_value_error():
    blob = encode_state(mixed_state())
    for n in range(len(blob)):
        with pytest.raises(ValueError, match="truncated|corrupt|not an encoded"):
            decode_state(blob[:n])


def test_every_flipped_byte_is_a_value_error():
    blob = encode_state({"a": np.arange(3, dtype=np.int32), "b": np.float32(1.0)})
    for i in range(len(blob)):
        damaged = bytearray(blob)
        damaged[i] ^= 0x40
        with pytest.raises(ValueError):
            decode_state(bytes(damaged))


def test_other_bytes_and_types_are_refused():
    with pytest.raises(ValueError, match="not an encoded user state"):
        decode_state(b"\x80\x04\x95 this is a pickle, not a state")
    with pytest.raises(ValueError, match="trailing"):
        # Valid CRC over extra bytes: the CRC alone does not hide a framing error.
        import struct
        import zlib
        body = encode_state({})[:-4] + b"xx"
        decode_state(body + struct.pack("<I", zlib.crc32(body)))
    with pytest.raises(ValueError, match="must be bytes"):
        decode_state("TFUS")


@pytest.mark.parametrize("state, match", [
    ({"x": np.array([object()], dtype=object)}, "without pickle"),
    ({"x": np.zeros(2, dtype=[("a", "<f4")])}, "without pickle"),
    ({1: np.zeros(2)}, "keys must be non-empty strings"),
    ({"": np.zeros(2)}, "keys must be non-empty strings"),
    ([("x", np.zeros(2))], "mapping"),
])
def test_unencodable_states_are_value_errors(state, match):
    with pytest.raises(ValueError, match=match):
        encode_state(state)
