"""Relay stream delivery: SessionStream.accept (new bytes, duplicates, gaps), the per-peer Outbox and its fast paths."""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claudenest import protocol as p
from claudenest.config import RelaySettings
from claudenest.relay.hub import Hub, Viewer
from claudenest.relay.outbox import COALESCE_LIMIT, Outbox, Output
from claudenest.relay.streams import Attachment, SessionStream


def stream(end: int = 0, ring_limit: int = 1024) -> SessionStream:
    return SessionStream(session_id="s", machine_id="m", user_id="u", end=end, persisted=end, ring_limit=ring_limit)


def test_new_stream_starts_its_ring_at_end() -> None:
    s = stream(end=500)
    assert s.ring_start == 500
    assert s.from_ring(500) == b""
    assert s.accept(500, b"abc") == (500, b"abc", None)
    assert s.from_ring(500) == b"abc"


def test_in_order_bytes_are_taken() -> None:
    s = stream()
    assert s.accept(0, b"abc") == (0, b"abc", None)
    assert s.accept(3, b"def") == (3, b"def", None)
    assert s.end == 6
    assert s.from_ring(0) == b"abcdef"
    assert s.from_ring(4) == b"ef"
    assert s.pending == [(0, b"abc"), (3, b"def")]
    assert s.pending_bytes == 6


def test_duplicate_bytes_are_ignored() -> None:
    s = stream()
    s.accept(0, b"abcdef")
    assert s.accept(0, b"abcdef") == (6, b"", None)
    assert s.accept(2, b"cd") == (6, b"", None)
    assert s.accept(6, b"") == (6, b"", None)
    assert s.end == 6
    assert s.from_ring(0) == b"abcdef"
    assert s.pending == [(0, b"abcdef")]
    assert s.pending_bytes == 6


def test_overlap_is_trimmed_to_the_new_part() -> None:
    s = stream()
    s.accept(0, b"abcdef")
    assert s.accept(3, b"DEFghi") == (6, b"ghi", None)
    assert s.end == 9
    assert s.from_ring(0) == b"abcdefghi"  # the already-held bytes are not replaced
    assert s.pending[-1] == (6, b"ghi")
    assert s.pending_bytes == 9


def test_gap_is_reported_and_the_ring_restarts() -> None:
    s = stream()
    s.accept(0, b"abc")
    assert s.accept(10, b"xyz") == (10, b"xyz", 3)
    assert s.end == 13
    assert s.ring_start == 10
    assert s.from_ring(10) == b"xyz"
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
    assert s.from_ring(2) == b"cdef"
    assert s.from_ring(4) == b"ef"
    s.accept(6, b"gh")
    assert (s.ring_start, s.from_ring(4)) == (4, b"efgh")
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
    assert s.from_ring(s.ring_start) == source[-64:]


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


async def test_drop_output_returns_first_dropped_offset(peer_box: tuple[Peer, Outbox]) -> None:
    peer, box = peer_box
    note = p.Gap(session_id=S2, from_offset=0, to_offset=3)
    box.put(Output(S1, 10, b"12345"))
    box.put(note)
    box.put(Output(S2, 0, b"abc"))
    box.put(Output(S1, 15, b"6789"))
    box.put(p.Frame(p.FrameKind.OUTPUT, S1, 99, b"kept"))  # a ready frame is not "output" to drop
    assert box.queued_bytes == 5 + 3 + 4 + 4
    assert box.drop_output(S1) == 10
    assert box.queued_bytes == 3 + 4
    assert box.drop_output(S1) is None
    assert box.drop_output(str(uuid.UUID(int=9))) is None
    assert box.queued_bytes == 7
    box.start()
    await peer.until(3)
    await asyncio.sleep(0.01)
    assert peer.sent == [note, out(S2, 0, b"abc"), out(S1, 99, b"kept")]
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


# -- the hub: forwarding unchanged vs trimming, and the running unpersisted total ------------------


def hub_with_viewer(*, queue_bytes: int = 1 << 20, replay: int = 1024) -> tuple[Hub, SessionStream, Peer, Outbox]:
    settings = RelaySettings(viewer_queue_bytes=queue_bytes, ring_bytes=1024, replay_limit_bytes=replay)
    hub = Hub(store=SimpleNamespace(sessions=SimpleNamespace(get=None)), settings=settings)  # type: ignore[arg-type]
    s = SessionStream(session_id=S1, machine_id="m", user_id="u", end=0, persisted=0, ring_limit=1024)
    hub.streams._streams[S1] = s
    peer = Peer()
    box = Outbox("viewer", peer.send_text, peer.send_bytes, low_water=hub.fanout.viewer_low_water())
    viewer = Viewer(user_id="u", outbox=box)
    viewer.sessions.add(S1)
    s.attachments[id(viewer)] = Attachment(viewer=viewer, read_only=False, next_offset=0)
    return hub, s, peer, box


async def test_hub_forwards_the_agents_frame_unless_it_trims() -> None:
    hub, s, peer, box = hub_with_viewer()
    box.start()
    await parked(box)
    try:
        raw = p.encode_frame(out(S1, 0, b"abc"))
        hub._ingest(s, 0, b"abc", raw)
        await peer.until(1)
        assert peer.raw[-1] is raw
        overlapping = p.encode_frame(out(S1, 1, b"bcdef"))  # a re-send: only "def" is new
        hub._ingest(s, 1, b"bcdef", overlapping)
        await peer.until(2)
        assert peer.raw[-1] == p.encode_frame(out(S1, 3, b"def"))
        assert peer.sent == [out(S1, 0, b"abc"), out(S1, 3, b"def")]
        assert hub.output.unpersisted_bytes == 6 == s.pending_bytes
    finally:
        await box.stop()


async def test_hub_running_unpersisted_total_follows_flushes() -> None:
    class Sessions:
        fail = False
        batches: list[list[tuple[str, int, bytes]]] = []

        async def append_output(self, batch: list[tuple[str, int, bytes]], cap: int) -> None:
            if self.fail:
                raise OSError("disk full")
            self.batches.append(batch)

    class Store:
        sessions = Sessions()

    hub, s, _, _ = hub_with_viewer()
    hub.output.store = Store()  # type: ignore[assignment]
    s.attachments.clear()
    hub._ingest(s, 0, b"abcd")
    hub._ingest(s, 2, b"cdef")
    assert hub.output.unpersisted_bytes == 6
    Store.sessions.fail = True
    with pytest.raises(OSError, match="disk full"):
        await hub.output.flush()
    assert hub.output.unpersisted_bytes == 6 == s.pending_bytes
    Store.sessions.fail = False
    await hub.output.flush()
    assert hub.output.unpersisted_bytes == 0 == s.pending_bytes
    assert Store.sessions.batches == [[(S1, 0, b"abcd"), (S1, 4, b"ef")]]


# Viewer backpressure: queue 4096 bytes, so the relay waits above 2048 queued and releases at 1024.


async def behind_viewer(grace: float) -> tuple[Hub, SessionStream, Peer, Outbox, bytes]:
    """A viewer whose writer is stuck sending the first 500 bytes while 3500 more wait in its queue."""
    hub, s, peer, box = hub_with_viewer(queue_bytes=4096)
    hub.fanout.viewer_grace = grace
    peer.gate = asyncio.Event()
    box.start()
    data = bytes(range(256)) * 16
    hub._ingest(s, 0, data[:500])
    await parked(box)
    for offset in range(500, 4000, 500):
        hub._ingest(s, offset, data[offset : offset + 500])
    assert box.queued_bytes == 3500
    return hub, s, peer, box, data[:4000]


def received(peer: Peer) -> tuple[bytes, list[p.Gap]]:
    """The output bytes the viewer got, checked to be contiguous except where a gap marker says otherwise."""
    got = bytearray()
    at = 0
    for item in peer.sent:
        if isinstance(item, p.Gap):
            assert item.from_offset == at
            at = item.to_offset
        elif isinstance(item, p.Frame):
            assert item.offset == at
            got += item.payload
            at += len(item.payload)
    return bytes(got), [m for m in peer.sent if isinstance(m, p.Gap)]


async def test_a_slow_viewer_within_the_grace_gets_every_byte() -> None:
    hub, s, peer, box, data = await behind_viewer(grace=5)
    try:
        waiting = asyncio.create_task(hub.fanout.backpressure(s))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # the relay is not reading the agent while the viewer is behind
        assert peer.gate is not None
        peer.gate.set()
        await asyncio.wait_for(waiting, 1)
        await peer.until(2)
        got, gaps = received(peer)
        assert (got, gaps) == (data, [])
        assert box.items == deque()
    finally:
        await box.stop()


async def test_a_stalled_viewer_past_the_grace_gets_one_gap_and_the_wait_ends() -> None:
    hub, s, peer, box, data = await behind_viewer(grace=0.2)
    try:
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(hub.fanout.backpressure(s), 2)
        assert 0.2 <= asyncio.get_running_loop().time() - started < 1
        assert [type(i) for i in box.items] == [p.Gap, Output]  # cut over: a gap and the ring's tail
        # Still stalled: no new grace for it; more output overflows its queue as before, folded into the same gap.
        for offset in range(4000, 12000, 500):
            hub._ingest(s, offset, bytes(500))
            await asyncio.wait_for(hub.fanout.backpressure(s), 0.05)
        assert peer.gate is not None
        peer.gate.set()
        await peer.until(3)
        await asyncio.sleep(0.01)
        got, gaps = received(peer)
        full = data + bytes(8000)
        assert len(gaps) == 1
        assert gaps[0].from_offset == 500
        assert got == full[:500] + full[gaps[0].to_offset :]
    finally:
        await box.stop()


async def test_a_viewer_that_caught_up_after_a_cut_over_gets_its_grace_again() -> None:
    hub, s, peer, box, _ = await behind_viewer(grace=0.1)
    try:
        await hub.fanout.backpressure(s)
        viewer = next(iter(s.attachments.values())).viewer
        assert viewer.lagging_since is not None
        assert peer.gate is not None
        peer.gate.set()
        await peer.until(3)
        await asyncio.sleep(0.01)  # the writer finds its queue empty: caught up
        peer.gate.clear()
        hub._ingest(s, s.end, bytes(500))
        await parked(box)
        for _ in range(6):
            hub._ingest(s, s.end, bytes(500))
        waiting = asyncio.create_task(hub.fanout.backpressure(s))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        assert viewer.lagging_since is None
        peer.gate.set()
        await asyncio.wait_for(waiting, 1)
    finally:
        await box.stop()


@pytest.mark.parametrize("how", ["detach", "close"])
async def test_a_viewer_that_leaves_ends_the_wait(how: str) -> None:
    hub, s, _, box, _ = await behind_viewer(grace=5)
    viewer = next(iter(s.attachments.values())).viewer
    try:
        waiting = asyncio.create_task(hub.fanout.backpressure(s))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        if how == "detach":
            hub.sessions.detach(viewer, S1)
        else:
            await box.stop()
        await asyncio.wait_for(waiting, 0.5)
        assert viewer.lagging_since is None  # released, not cut over
    finally:
        await box.stop()
