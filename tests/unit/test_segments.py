"""Segment files: appends by offset, holes, retention by whole segments, and reading back after a restart."""

from __future__ import annotations

from pathlib import Path

from claudenest.relay.segments import SegmentStore, segment_bytes_for

S = "00000000-0000-0000-0000-000000000001"


def test_contiguous_appends_fill_segments_and_read_back(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path, segment_bytes=10)
    store.append(S, 0, [b"abcdef"])
    store.append(S, 6, [b"ghij", b"klm"])  # the first segment is full after "j"... and takes "klm" too
    store.append(S, 13, [b"nop"])  # a new segment: the current one is over its size
    assert store.bounds(S) == (0, 16)
    assert store.read(S, 0, 100) == (0, b"abcdefghijklmnop")
    assert store.read(S, 11, 3) == (11, b"lmn")
    names = sorted(p.name for p in (tmp_path / S).iterdir())
    assert names == [f"{0:020d}.seg", f"{13:020d}.seg"]


def test_a_resend_of_bytes_already_kept_is_skipped(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path, segment_bytes=1 << 20)
    store.append(S, 0, [b"hello "])
    store.append(S, 3, [b"lo world"])  # after a reconnect the agent re-sends from an older offset
    assert store.read(S, 0, 100) == (0, b"hello world")
    store.append(S, 0, [b"hel"])
    assert store.bounds(S) == (0, 11)


def test_a_hole_starts_a_segment_and_reads_stop_at_it(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path, segment_bytes=1 << 20)
    store.append(S, 0, [b"before"])
    store.append(S, 100, [b"after"])  # bytes 6-99 never reached the relay
    assert store.read(S, 0, 1000) == (0, b"before")
    assert store.read(S, 6, 1000) == (100, b"after")  # the caller sees the jump: a gap
    assert store.read(S, 50, 2) == (100, b"af")
    assert store.read(S, 105, 10) == (105, b"")


def test_retention_drops_whole_old_segments_while_the_rest_holds_the_cap(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path, segment_bytes=4)
    for i in range(10):
        store.append(S, i * 4, [bytes([65 + i]) * 4])
    store.trim(S, cap_bytes=10)
    start, end = store.bounds(S) or (0, 0)
    assert end == 40
    assert start == 28  # 12 bytes kept: dropping one more segment would leave less than the cap
    assert store.read(S, 0, 100) == (28, b"HHHHIIIIJJJJ")
    assert len(list((tmp_path / S).iterdir())) == 3


def test_a_new_store_finds_what_an_old_one_wrote(tmp_path: Path) -> None:
    first = SegmentStore(tmp_path, segment_bytes=8)
    first.append(S, 0, [b"0123456789"])
    first.append(S, 20, [b"xyz"])
    # No close: the relay was killed. The files are the truth.
    again = SegmentStore(tmp_path, segment_bytes=8)
    assert again.bounds(S) == (0, 23)
    again.append(S, 23, [b"!"])
    assert again.read(S, 20, 10) == (20, b"xyz!")
    assert again.session_ids() == [S]
    again.delete(S)
    assert again.bounds(S) is None
    assert not (tmp_path / S).exists()


def test_segment_size_follows_the_cap() -> None:
    assert segment_bytes_for(64 << 20) == 8 << 20
    assert segment_bytes_for(8 << 20) == 1 << 20
    assert segment_bytes_for(1000) == 64 << 10
