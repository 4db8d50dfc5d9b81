"""The agent's per-session output ring: absolute offsets over the newest ``limit`` bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claudenest.ring import OutputRing


def test_empty_ring() -> None:
    ring = OutputRing(16)
    assert (ring.start, ring.end) == (0, 0)
    assert ring.read(0, 10) == b""


def test_offsets_advance_with_appends() -> None:
    ring = OutputRing(16)
    ring.append(b"hello")
    ring.append(b" world")
    assert (ring.start, ring.end) == (0, 11)
    assert ring.read(0, 100) == b"hello world"
    assert ring.read(6, 3) == b"wor"
    assert ring.read(11, 5) == b""


def test_overflow_trims_the_oldest_bytes() -> None:
    ring = OutputRing(8)
    ring.append(b"0123456789")
    assert (ring.start, ring.end) == (2, 10)
    assert ring.read(2, 100) == b"23456789"
    ring.append(b"ab")
    assert (ring.start, ring.end) == (4, 12)
    assert ring.read(4, 100) == b"456789ab"
    assert ring.read(10, 100) == b"ab"


@pytest.mark.parametrize("offset", [-1, 3, 13])
def test_read_outside_the_ring_is_an_error(offset: int) -> None:
    ring = OutputRing(8)
    ring.append(b"0123456789ab")  # holds [4, 12)
    with pytest.raises(ValueError, match="outside the ring"):
        ring.read(offset, 1)


@settings(database=None, max_examples=200)
@given(st.integers(1, 64), st.lists(st.binary(max_size=40), max_size=20))
def test_ring_matches_the_tail_of_everything_appended(limit: int, chunks: list[bytes]) -> None:
    ring = OutputRing(limit)
    everything = b""
    for chunk in chunks:
        ring.append(chunk)
        everything += chunk
        assert ring.end == len(everything)
        assert ring.start == max(0, len(everything) - limit)
        assert ring.read(ring.start, limit) == everything[ring.start :]


def test_a_full_ring_wraps_and_reads_across_the_seam() -> None:
    ring = OutputRing(8)
    ring.append(b"012345")
    ring.append(b"6789ab")  # holds [4, 12): written circularly past the buffer's end
    assert (ring.start, ring.end) == (4, 12)
    assert ring.read(4, 100) == b"456789ab"
    assert ring.read(7, 3) == b"789"
    assert ring.read(6, 4) == b"6789"


def test_one_append_larger_than_the_ring_keeps_its_tail() -> None:
    ring = OutputRing(8)
    ring.append(b"abc")
    ring.append(b"0123456789")
    assert (ring.start, ring.end) == (5, 13)
    assert ring.read(5, 100) == b"23456789"
    ring.append(b"xy")
    assert ring.read(7, 100) == b"456789xy"


@settings(database=None, max_examples=300)
@given(
    st.integers(1, 64),
    st.lists(st.binary(max_size=150), max_size=20),
    st.lists(st.tuples(st.floats(0, 1), st.integers(0, 100)), min_size=1, max_size=5),
)
def test_any_read_within_the_ring_is_the_bytes_appended_there(
    limit: int, chunks: list[bytes], reads: list[tuple[float, int]]
) -> None:
    ring = OutputRing(limit)
    everything = b""
    for chunk in chunks:
        ring.append(chunk)
        everything += chunk
        for where, size in reads:
            offset = ring.start + round(where * (ring.end - ring.start))
            assert ring.read(offset, size) == everything[offset : offset + size]


def test_a_ring_that_starts_late_or_jumps_keeps_absolute_offsets() -> None:
    ring = OutputRing(8, start=1000)
    assert (ring.start, ring.end) == (1000, 1000)
    ring.append(b"abcdef")
    ring.append(b"ghij")  # wraps: holds the newest 8 bytes
    assert (ring.start, ring.end) == (1002, 1010)
    assert ring.read(1002, 100) == b"cdefghij"
    assert ring.read(1007, 2) == b"hi"
    ring.reset(5000)  # bytes 1010-4999 never arrived
    ring.append(b"xyz")
    assert (ring.start, ring.end) == (5000, 5003)
    assert ring.read(5000, 10) == b"xyz"
