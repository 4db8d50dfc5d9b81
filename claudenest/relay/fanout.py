"""Fan-out: every viewer of a session gets its bytes in order, by offset. No store, no HTTP.

Policy (docs/protocol.md "Flow control"): a viewer gets bytes from the offset it asks for, never an unbounded
replay; the slowest viewer never stalls the session or other viewers for longer than a bounded grace period (its
queue is bounded in bytes; a viewer that stays behind past the grace, or overflows its queue, is cut over to a gap
marker and a bounded tail).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from claudenest.config import RelaySettings
from claudenest.protocol import Attach, Attached, Gap, SessionStatus
from claudenest.relay.outbox import Outbox, Output
from claudenest.relay.streams import Attachment, SessionStream

log = logging.getLogger(__name__)

# After an output frame, when a viewer of that session has more than half its queue (relay.viewer_queue_bytes)
# waiting, the relay stops reading that agent until the viewer's queue is down to a quarter, so TCP slows the agent
# and the agent stops reading the PTY: the program blocks instead of bytes being dropped. Never longer than
# VIEWER_GRACE seconds per episode; a viewer still behind then is cut over to a gap (as on overflow) and gets no new
# grace until it has caught up.
VIEWER_GRACE = 2.0

ReadLog = Callable[[str, int, int], Awaitable[tuple[int, bytes]]]


@dataclass(eq=False)
class Viewer:
    user_id: str
    outbox: Outbox
    sessions: set[str] = field(default_factory=set)
    # Set when the viewer's grace ran out and it was cut over: the outbox's ``emptied`` count at that moment. Until
    # the writer has emptied the queue once since (the viewer caught up), nobody waits for this viewer again, so a
    # stalled viewer costs the producer one grace period, not one per refill of its queue.
    lagging_since: int | None = None


class Fanout:
    def __init__(self, settings: RelaySettings, read_log: ReadLog) -> None:
        self.settings = settings
        self._read_log = read_log
        self.watchers: dict[str, set[Viewer]] = {}
        self.viewer_grace = VIEWER_GRACE

    # -- live bytes ---------------------------------------------------------------------------------------------

    def deliver(
        self, stream: SessionStream, start: int, fresh: bytes, frame: bytes | None, gap_from: int | None
    ) -> None:
        """New bytes ``fresh`` at ``start`` (after a gap from ``gap_from``, if one opened) to every viewer."""
        if gap_from is not None:
            for attachment in stream.attachments.values():
                self._send_gap(stream, attachment, gap_from, start)
        if fresh:
            for attachment in list(stream.attachments.values()):
                self._deliver(stream, attachment, start, fresh, frame)

    def viewer_low_water(self) -> int:
        """A viewer waited for is released once its queue is down to this (see VIEWER_GRACE)."""
        return self.settings.viewer_queue_bytes // 4

    def _waits_for(self, viewer: Viewer) -> bool:
        """Whether the producer should wait for this viewer: more than half its queue waiting, and not lagging."""
        outbox = viewer.outbox
        if outbox.queued_bytes <= self.settings.viewer_queue_bytes // 2 or outbox.closed.is_set():
            return False
        if viewer.lagging_since is not None:
            if outbox.emptied == viewer.lagging_since:
                return False  # cut over after its grace and not caught up since: today's overflow rule applies
            viewer.lagging_since = None
        return True

    async def backpressure(self, stream: SessionStream | None) -> None:
        """After an agent frame: wait (not reading that agent) while a viewer of the session is far behind.

        Bounded: at most ``viewer_grace`` seconds per episode, over all the viewers waited for; a viewer that is
        still above the low-water mark then is cut over to a gap and the wait ends. A viewer that detaches or
        closes ends its part of the wait at once. Other sessions of the same agent wait too (one socket): that
        head-of-line pause is bounded by the same grace.
        """
        if stream is None:
            return
        behind = [a for a in stream.attachments.values() if self._waits_for(a.viewer)]
        if not behind:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.viewer_grace
        low = self.viewer_low_water()

        def waiting(attachment: Attachment) -> bool:
            outbox = attachment.viewer.outbox
            return (
                outbox.queued_bytes > low
                and not outbox.closed.is_set()
                and stream.attachments.get(id(attachment.viewer)) is attachment
            )

        for attachment in behind:
            outbox = attachment.viewer.outbox
            while waiting(attachment) and (remaining := deadline - loop.time()) > 0:
                outbox.drained.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(outbox.drained.wait(), remaining)
        for attachment in behind:
            if waiting(attachment):
                log.info(
                    "session %s: viewer %s still %d bytes behind after %.1f s; cut over to a gap",
                    stream.session_id,
                    attachment.viewer.outbox.name,
                    attachment.viewer.outbox.queued_bytes,
                    self.viewer_grace,
                )
                self._cut_over(stream, attachment)
                attachment.viewer.lagging_since = attachment.viewer.outbox.emptied

    def _deliver(
        self, stream: SessionStream, attachment: Attachment, start: int, data: bytes, frame: bytes | None = None
    ) -> None:
        end = start + len(data)
        if end <= attachment.next_offset:
            return  # the viewer already has these bytes (it attached from a later offset)
        if start < attachment.next_offset:
            data = data[attachment.next_offset - start :]
            start = attachment.next_offset
            frame = None  # no longer what the agent's frame says
        outbox = attachment.viewer.outbox
        if outbox.queued_bytes + len(data) > self.settings.viewer_queue_bytes:
            self._cut_over(stream, attachment)
            return
        outbox.put(Output(stream.session_id, start, data, frame))
        attachment.next_offset = end

    def _cut_over(self, stream: SessionStream, attachment: Attachment) -> None:
        """Too far behind: drop its backlog of this session and send a gap marker plus a bounded tail instead."""
        outbox = attachment.viewer.outbox
        dropped_from = outbox.drop_output(stream.session_id)
        behind = dropped_from if dropped_from is not None else attachment.next_offset
        # Never resend what it already has: the tail starts no earlier than the first byte it was about to miss.
        tail_start = max(behind, stream.ring_start, stream.end - self.settings.replay_limit_bytes)
        self._send_gap(stream, attachment, behind, tail_start)
        if tail_start < stream.end:
            outbox.put(Output(stream.session_id, tail_start, stream.from_ring(tail_start)))
        attachment.next_offset = stream.end

    def _send_gap(self, stream: SessionStream, attachment: Attachment, from_offset: int, to_offset: int) -> None:
        if to_offset > from_offset:
            attachment.viewer.outbox.put(
                Gap(session_id=stream.session_id, from_offset=from_offset, to_offset=to_offset)
            )
        attachment.next_offset = max(attachment.next_offset, to_offset)

    # -- status -------------------------------------------------------------------------------------------------

    def publish(self, stream: SessionStream, event: SessionStatus) -> None:
        """To every viewer of the session, and to the owner's viewers that watch all their sessions."""
        told: set[int] = set()
        for attachment in stream.attachments.values():
            attachment.viewer.outbox.put(event)
            told.add(id(attachment.viewer))
        for viewer in self.watchers.get(stream.user_id, ()):
            if id(viewer) not in told:
                viewer.outbox.put(event)

    def watch(self, viewer: Viewer) -> None:
        self.watchers.setdefault(viewer.user_id, set()).add(viewer)

    # -- attach and detach --------------------------------------------------------------------------------------

    async def attach(
        self, viewer: Viewer, stream: SessionStream, request: Attach, log_start: int, status: SessionStatus | None
    ) -> None:
        """Line up backlog and live bytes for a viewer the caller checked may see the session; ``status`` follows
        the backlog when the session has news a new viewer must hear (it ended, or it waits for a permission)."""
        limit = self.settings.replay_limit_bytes
        requested = max(stream.end - limit, 0) if request.from_offset is None else request.from_offset
        # Never more than the replay limit, never older than the log keeps; a viewer ahead of us waits.
        start = max(requested, stream.end - limit, log_start)
        early = b""
        if start < stream.ring_start:
            # Older than the ring: read the persisted log (bounded by the replay limit) before going live.
            read_from, early = await self._read_log(stream.session_id, start, stream.ring_start - start)
            if read_from > start:
                start = read_from
        # No awaits from here on: the ring cannot move while we line up backlog and live bytes.
        attachment = Attachment(viewer=viewer, read_only=request.read_only, next_offset=start)
        viewer.outbox.put(
            Attached(
                session_id=stream.session_id,
                status=stream.status,
                from_offset=start,
                end_offset=stream.end,
                cols=stream.cols,
                rows=stream.rows,
                read_only=request.read_only,
            )
        )
        if requested < start:
            viewer.outbox.put(Gap(session_id=stream.session_id, from_offset=requested, to_offset=start))
        if early:
            viewer.outbox.put(Output(stream.session_id, start, early))
            attachment.next_offset = start + len(early)
        if attachment.next_offset < stream.ring_start <= stream.end:
            self._send_gap(stream, attachment, attachment.next_offset, stream.ring_start)
        if attachment.next_offset < stream.end:
            viewer.outbox.put(
                Output(stream.session_id, attachment.next_offset, stream.from_ring(attachment.next_offset))
            )
            attachment.next_offset = stream.end
        stream.attachments[id(viewer)] = attachment
        viewer.sessions.add(stream.session_id)
        if status is not None:
            viewer.outbox.put(status)

    def detach(self, viewer: Viewer, stream: SessionStream | None) -> None:
        if stream is not None:
            stream.attachments.pop(id(viewer), None)
            viewer.sessions.discard(stream.session_id)
        viewer.outbox.drained.set()  # wakes a producer waiting on this viewer: it re-checks and stops waiting

    def forget_viewer(self, viewer: Viewer) -> None:
        self.watchers.get(viewer.user_id, set()).discard(viewer)


def typing_viewer(stream: SessionStream | None) -> bool:
    """Someone is watching this session live with the right to type."""
    return stream is not None and any(not a.read_only for a in stream.attachments.values())
