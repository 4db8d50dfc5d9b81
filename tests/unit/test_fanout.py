"""Fan-out: live viewers get frames as they come; a viewer whose queue fills is served from the ring and the log at
its own pace, loses nothing retention still keeps, and goes live again; nobody waits for it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from claudenest import protocol as p
from claudenest.config import RelaySettings
from claudenest.relay.fanout import Fanout, Viewer
from claudenest.relay.outbox import Outbox
from claudenest.relay.segments import SegmentStore
from claudenest.relay.streams import SessionStream
from tests.unit.test_streams import S1, Peer, out, parked


class Session:
    """A stream, its on-disk log and one fan-out, wired as the hub wires them (without sockets or a database)."""

    def __init__(self, tmp_path: Path, *, queue_bytes: int = 4096, ring: int = 1024, segment: int = 1 << 20) -> None:
        self.settings = RelaySettings(viewer_queue_bytes=queue_bytes, ring_bytes=ring)
        self.log = SegmentStore(tmp_path, segment_bytes=segment)
        self.stream = SessionStream(session_id=S1, machine_id="m", user_id="u", end=0, persisted=0, ring_limit=ring)
        self.fanout = Fanout(self.settings, self.read)

    async def read(self, session_id: str, offset: int, limit: int) -> tuple[int, bytes]:
        return self.log.read(session_id, offset, limit)

    def produce(self, data: bytes, raw: bytes | None = None) -> None:
        """An agent frame arrives and is persisted at once (the flush is tested in the e2e tests)."""
        offset = self.stream.end
        start, fresh, gap_from = self.stream.accept(offset, data)
        self.fanout.deliver(self.stream, start, fresh, raw, gap_from)
        for chunk_offset, chunk in self.stream.take_pending():
            self.log.append(S1, chunk_offset, [chunk])
        self.stream.persisted = self.stream.end

    def viewer(self, peer: Peer, *, start: int | None = None) -> Viewer:
        box = Outbox("viewer", peer.send_text, peer.send_bytes, low_water=self.fanout.viewer_low_water())
        viewer = Viewer(user_id="u", outbox=box)
        box.start()
        self.fanout.attach(viewer, self.stream, start=self.stream.end if start is None else start, read_only=False)
        return viewer


def received(peer: Peer) -> tuple[bytes, list[p.Gap]]:
    """Output bytes as the viewer got them, checked contiguous except where a gap marker says otherwise."""
    got = bytearray()
    at: int | None = None
    for item in peer.sent:
        if isinstance(item, p.Attached):
            at = item.from_offset
        elif isinstance(item, p.Gap):
            assert item.from_offset == at
            at = item.to_offset
        elif isinstance(item, p.Frame):
            assert item.offset == at, (item.offset, at)
            got += item.payload
            at = item.end
    return bytes(got), [m for m in peer.sent if isinstance(m, p.Gap)]


async def settle(peer: Peer) -> None:
    """Let catch-up tasks and writers run until nothing new arrives."""
    seen = -1
    while seen != len(peer.sent):
        seen = len(peer.sent)
        await asyncio.sleep(0.02)


async def test_a_live_viewer_gets_the_agents_frame_as_is_unless_it_was_trimmed(tmp_path: Path) -> None:
    session = Session(tmp_path)
    peer = Peer()
    viewer = session.viewer(peer)
    await settle(peer)
    raw = p.encode_frame(out(S1, 0, b"abc"))
    session.produce(b"abc", raw)
    await peer.until(2)
    assert peer.raw[-1] is raw
    await viewer.outbox.stop()


async def test_a_viewer_that_falls_behind_is_served_from_the_log_and_loses_nothing(tmp_path: Path) -> None:
    session = Session(tmp_path, queue_bytes=4096, ring=1024)
    slow, fast = Peer(), Peer()
    slow_viewer = session.viewer(slow)
    fast_viewer = session.viewer(fast)
    await settle(slow)
    slow.gate = asyncio.Event()  # the slow viewer's socket stops taking data
    data = bytes(range(256)) * 200  # 51,200 bytes in 100 frames: far more than its queue and the ring
    for i in range(0, len(data), 512):
        session.produce(data[i : i + 512])
        await asyncio.sleep(0)
    # Nobody waited for the slow viewer: the fast one has everything already.
    await settle(fast)
    assert received(fast) == (data, [])
    attachment = session.stream.attachments[id(slow_viewer)]
    assert not attachment.live
    assert slow_viewer.outbox.queued_bytes <= 4096 + 512  # its backlog is bounded, the rest stays in the log
    slow.gate.set()
    await settle(slow)
    assert received(slow) == (data, [])
    assert attachment.live  # caught up: new bytes go out live again
    session.produce(b"tail")
    await settle(slow)
    assert received(slow)[0] == data + b"tail"
    for viewer in (slow_viewer, fast_viewer):
        await viewer.outbox.stop()


async def test_a_gap_is_sent_only_for_what_retention_dropped(tmp_path: Path) -> None:
    session = Session(tmp_path, ring=1024, segment=1000)
    data = bytes(range(250)) * 40  # 10,000 bytes in ten segments
    for i in range(0, len(data), 500):
        session.produce(data[i : i + 500])
    session.log.trim(S1, cap_bytes=3000)  # keeps the newest 3 segments: bytes 7000-9999
    peer = Peer()
    viewer = session.viewer(peer, start=0)
    await settle(peer)
    got, gaps = received(peer)
    assert [(g.from_offset, g.to_offset) for g in gaps] == [(0, 7000)]
    assert got == data[7000:]
    await viewer.outbox.stop()


async def test_status_for_a_viewer_catching_up_waits_until_it_has_the_bytes(tmp_path: Path) -> None:
    session = Session(tmp_path)
    data = b"x" * 20_000
    for i in range(0, len(data), 1000):
        session.produce(data[i : i + 1000])
    peer = Peer()
    peer.gate = asyncio.Event()
    viewer = session.viewer(peer, start=0)
    await parked(viewer.outbox)
    exited = p.SessionStatus(session_id=S1, status="exited", exit_code=0, end_offset=len(data), ended=True)
    session.fanout.publish(session.stream, exited)
    peer.gate.set()
    await settle(peer)
    assert peer.sent[-1] == exited
    assert received(peer)[0] == data
    await viewer.outbox.stop()


@pytest.mark.parametrize("how", ["detach", "close"])
async def test_a_viewer_that_leaves_while_catching_up_ends_its_task(tmp_path: Path, how: str) -> None:
    session = Session(tmp_path)
    for _ in range(20):
        session.produce(b"y" * 1000)
    peer = Peer()
    peer.gate = asyncio.Event()
    viewer = session.viewer(peer, start=0)
    await asyncio.sleep(0.05)
    assert session.fanout._tasks  # serving it from the log, waiting for room in its queue
    if how == "detach":
        session.fanout.detach(viewer, session.stream)
    else:
        await viewer.outbox.stop()
    await asyncio.sleep(0.05)
    assert not session.fanout._tasks
    await viewer.outbox.stop()


async def test_a_log_that_cannot_be_read_detaches_the_viewer_with_an_error(tmp_path: Path) -> None:
    session = Session(tmp_path, ring=1024)
    for _ in range(5):
        session.produce(b"z" * 1000)  # older than the ring: a viewer from 0 needs the log
    (segment,) = (tmp_path / S1).iterdir()
    segment.unlink()
    segment.mkdir()  # the disk refuses: the segment cannot be read
    peer = Peer()
    viewer = session.viewer(peer, start=0)
    await settle(peer)
    errors = [m for m in peer.sent if isinstance(m, p.Error)]
    assert [e.session_id for e in errors] == [S1]
    assert id(viewer) not in session.stream.attachments
    await viewer.outbox.stop()
