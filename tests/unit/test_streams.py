"""Relay stream delivery: SessionStream.accept (new bytes, duplicates, gaps), the per-peer Outbox and its fast paths."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claudenest import protocol as p
from claudenest.relay.outbox import COALESCE_LIMIT, Outbox, Output
from claudenest.relay.streams import SessionStream


def stream(end: int = 0, ring_limit: int = 1024) -> SessionStream:
    return SessionStream(session_id="s", machine_id="m", user_id="u", end=end, persisted=end, ring_limit=ring_limit)


def test_new_stream_starts_its_ring_at_end() -> None:
    s = stream(end=500)
    assert s.ring_start == 500
    assert s.ring_slice(500) == b""
    assert s.accept(500, b"abc") == (500, b"abc", None)
    assert s.ring_slice(500) == b"abc"


def test_in_order_bytes_are_taken() -> None:
    s = stream()
    assert s.accept(0, b"abc") == (0, b"abc", None)
    assert s.accept(3, b"def") == (3, b"def", None)
    assert s.end == 6
    assert s.ring_slice(0) == b"abcdef"
    assert s.ring_slice(4) == b"ef"
    assert s.pending == [(0, b"abc"), (3, b"def")]
    assert s.pending_bytes == 6


def test_duplicate_bytes_are_ignored() -> None:
    s = stream()
    s.accept(0, b"abcdef")
    assert s.accept(0, b"abcdef") == (6, b"", None)
    assert s.accept(2, b"cd") == (6, b"", None)
    assert s.accept(6, b"") == (6, b"", None)
    assert s.end == 6
    assert s.ring_slice(0) == b"abcdef"
    assert s.pending == [(0, b"abcdef")]
    assert s.pending_bytes == 6


def test_overlap_is_trimmed_to_the_new_part() -> None:
    s = stream()
    s.accept(0, b"abcdef")
    assert s.accept(3, b"DEFghi") == (6, b"ghi", None)
    assert s.end == 9
    assert s.ring_slice(0) == b"abcdefghi"  # the already-held bytes are not replaced
    assert s.pending[-1] == (6, b"ghi")
    assert s.pending_bytes == 9


def test_gap_is_reported_and_the_ring_restarts() -> None:
    s = stream()
    s.accept(0, b"abc")
    assert s.accept(10, b"xyz") == (10, b"xyz", 3)
    assert s.end == 13
    assert s.ring_start == 10
    assert s.ring_slice(10) == b"xyz"
    assert s.pending == [(0, b"abc"), (10, b"xyz")]
    # the next contiguous bytes open no new gap
    assert s.accept(13, b"!") == (13, b"!", None)


def test_gap_with_no_data_still_moves_end() -> None:
    s = stream(end=5)
    assert s.accept(20, b"") == (20, b"", 5)
    assert s.end == 20
    assert s.accept(20, b"a") == (20, b"a", None)


def test_ring_keeps_only_ring_limit_bytes() -> None:
    s = stream(ring_limit=4)
    s.accept(0, b"abcdef")
    assert s.ring_start == 2
    assert s.ring_slice(2) == b"cdef"
    assert s.ring_slice(4) == b"ef"
    s.accept(6, b"gh")
    assert (s.ring_start, s.ring_slice(4)) == (4, b"efgh")
    # pending keeps everything until it is persisted
    assert s.take_pending() == [(0, b"abcdef"), (6, b"gh")]
    assert (s.pending, s.pending_bytes) == ([], 0)


def test_a_stream_is_live_until_its_process_ends_whatever_claude_reports() -> None:
    s = stream()
    assert not s.ended
    s.status = "error"  # Claude's StopFailure: the process is still there
    assert not s.ended


@settings(database=None, max_examples=300)
@given(
    st.binary(min_size=1, max_size=200),
    st.lists(st.tuples(st.integers(0, 199), st.integers(0, 60)), max_size=30),
)
def test_any_resends_reassemble_the_stream(source: bytes, pieces: list[tuple[int, int]]) -> None:
    """Chunks of one stream re-sent out of order and overlapping: the taken bytes are always the source's."""
    s = stream(ring_limit=64)
    for start, length in [*pieces, (0, len(source))]:
        start = min(start, s.end)  # the agent never skips ahead here, so no gap may open
        chunk = source[start : start + length]
        offset, fresh, gap = s.accept(start, chunk)
        assert gap is None
        assert fresh == source[offset : offset + len(fresh)]
    assert s.end == len(source)
    assert b"".join(data for _, data in s.take_pending()) == source
    assert s.ring_slice(s.ring_start) == source[-64:]


# -- outbox ----------------------------------------------------------------------------------------

S1 = str(uuid.UUID(int=1))
S2 = str(uuid.UUID(int=2))


class Peer:
    """Records what the outbox sends; ``gate`` (when set) holds every binary send until released."""

    def __init__(self) -> None:
        self.sent: list[p.Frame | p.Message] = []
        self.raw: list[bytes] = []  # binary sends as given, to tell a forwarded frame from a re-encoded one
        self.gate: asyncio.Event | None = None
        self.fail = False
        self.changed = asyncio.Event()

    async def send_text(self, text: str) -> None:
        self.sent.append(p.decode_message(text))
        self.changed.set()

    async def send_bytes(self, data: bytes) -> None:
        if self.fail:
            raise ConnectionError("peer went away")
        if self.gate is not None:
            await self.gate.wait()
        self.raw.append(data)
        self.sent.append(p.decode_frame(data))
        self.changed.set()

    async def until(self, count: int) -> None:
        async def wait() -> None:
            while len(self.sent) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), 5)


def out(session: str, offset: int, data: bytes) -> p.Frame:
    return p.Frame(p.FrameKind.OUTPUT, session, offset, data)


@pytest.fixture
async def peer_box() -> AsyncIterator[tuple[Peer, Outbox]]:
    peer = Peer()
    box = Outbox("test", peer.send_text, peer.send_bytes)
    yield peer, box
    await box.stop()


async def test_items_are_delivered_in_order_and_contiguous_output_coalesces(
    peer_box: tuple[Peer, Outbox],
) -> None:
    peer, box = peer_box
    hello = p.Welcome(protocol=1, relay_version="x")
    bye = p.SessionStatus(session_id=S1, status="exited", exit_code=0)
    typed = p.Frame(p.FrameKind.INPUT, S2, 7, b"ls\r")
    for item in (
        hello,
        Output(S1, 0, b"ab"),
        Output(S1, 2, b"cd"),
        Output(S1, 4, b"ef"),
        Output(S2, 0, b"zz"),
        Output(S1, 6, b"gh"),
        typed,
        bye,
    ):
        box.put(item)
    assert box.queued_bytes == 2 * 5 + 3
    box.start()
    await peer.until(6)
    await asyncio.sleep(0.01)
    assert peer.sent == [hello, out(S1, 0, b"abcdef"), out(S2, 0, b"zz"), out(S1, 6, b"gh"), typed, bye]
    assert box.queued_bytes == 0


async def test_non_contiguous_output_is_not_merged(peer_box: tuple[Peer, Outbox]) -> None:
    peer, box = peer_box
    box.put(Output(S1, 0, b"ab"))
    box.put(Output(S1, 5, b"cd"))  # a hole between 2 and 5
    box.put(Output(S1, 7, b"ef"))
    box.start()
    await peer.until(2)
    assert peer.sent == [out(S1, 0, b"ab"), out(S1, 5, b"cdef")]


async def test_coalescing_stops_at_the_limit(peer_box: tuple[Peer, Outbox]) -> None:
    peer, box = peer_box
    big = b"x" * (COALESCE_LIMIT - 1)
    box.put(Output(S1, 0, big))
    box.put(Output(S1, len(big), b"1" * 10))
    box.put(Output(S1, len(big) + 10, b"2" * 10))
    box.start()
    await peer.until(2)
    assert peer.sent == [out(S1, 0, big + b"1" * 10), out(S1, len(big) + 10, b"2" * 10)]


async def test_output_queued_during_a_slow_send_goes_out_as_one_frame(peer_box: tuple[Peer, Outbox]) -> None:
    peer, box = peer_box
    peer.gate = asyncio.Event()
    box.start()
    box.put(Output(S1, 0, b"first"))
    await asyncio.sleep(0.01)  # the writer is now stuck sending "first"
    for i, chunk in enumerate((b"a", b"b", b"c")):
        box.put(Output(S1, 5 + i, chunk))
    assert box.queued_bytes == 3
    peer.gate.set()
    await peer.until(2)
    await asyncio.sleep(0.01)
    assert peer.sent == [out(S1, 0, b"first"), out(S1, 5, b"abc")]
    assert box.queued_bytes == 0


async def test_items_put_after_start_wake_the_writer(peer_box: tuple[Peer, Outbox]) -> None:
    peer, box = peer_box
    box.start()
    await asyncio.sleep(0.01)
    box.put(p.Kill(session_id=S1))
    await peer.until(1)
    assert peer.sent == [p.Kill(session_id=S1)]


async def test_a_paused_peer_gets_nothing_until_it_resumes_and_its_backlog_is_counted(
    peer_box: tuple[Peer, Outbox],
) -> None:
    peer, box = peer_box
    box.start()
    box.pause()
    box.put(Output(S1, 0, b"held"))
    box.put(p.SessionStatus(session_id=S1, status="idle"))
    await asyncio.sleep(0.05)
    assert peer.sent == []
    assert box.paused
    assert box.queued_bytes == 4  # what waits counts, so the hub's backpressure and gap policy bound it
    box.resume()
    await peer.until(2)
    assert peer.sent == [out(S1, 0, b"held"), p.SessionStatus(session_id=S1, status="idle")]
    assert box.queued_bytes == 0


async def test_a_failing_peer_closes_the_outbox(peer_box: tuple[Peer, Outbox]) -> None:
    peer, box = peer_box
    peer.fail = True
    box.put(Output(S1, 0, b"x"))
    box.start()
    await asyncio.wait_for(box.closed.wait(), 5)
    assert peer.sent == []


async def test_stop_sets_closed(peer_box: tuple[Peer, Outbox]) -> None:
    _, box = peer_box
    box.start()
    await box.stop()
    assert box.closed.is_set()


# -- the agent's frame forwarded unchanged ------------------------------------------------------------


async def parked(box: Outbox) -> None:
    """Let the writer task reach its wait for items."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_the_agents_frame_is_forwarded_as_is(peer_box: tuple[Peer, Outbox]) -> None:
    peer, box = peer_box
    raw = p.encode_frame(out(S1, 3, b"xyz"))
    box.start()
    await parked(box)
    box.put(Output(S1, 3, b"xyz", raw))
    await peer.until(1)
    assert peer.raw[0] is raw
