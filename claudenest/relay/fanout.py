"""Fan-out: every viewer of a session gets its bytes in order, by offset, at its own pace. No store, no HTTP.

Policy (docs/protocol.md "Flow control"), in full:

- A viewer is either **live** (new bytes are queued for it as they arrive) or **catching up** (a task of its own
  feeds it from the relay's ring and the persisted log, a chunk at a time, whenever its queue has room).
- A live viewer whose queue (``relay.viewer_queue_bytes``) would overflow becomes a catching-up viewer. Nothing is
  dropped and nobody waits for it: the agent and the other viewers go on at their pace. The agent is slowed only by
  persistence (output_log.py), never by a viewer.
- A catching-up viewer that reaches the end of the stream goes live again, with no await between its last chunk
  and the switch, so no byte falls between the two.
- A gap is sent only for bytes the relay no longer has: retention dropped them, or the agent lost them before they
  reached the relay.
- Status messages for a catching-up viewer wait until it has caught up, so it never hears "exited" before the last
  bytes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from claudenest.config import RelaySettings
from claudenest.protocol import HEADER_SIZE, Attached, Error, Gap, Message, SessionStatus
from claudenest.relay.outbox import Outbox, Output
from claudenest.relay.streams import Attachment, SessionStream

log = logging.getLogger(__name__)

# What a catching-up viewer is given per step: one read of the log, one frame.
CATCH_UP_CHUNK = 256 << 10
# How long a catching-up viewer waits before asking again for bytes that are neither in the ring nor on disk yet
# (they are in the flush that is under way).
UNFLUSHED_RETRY = 0.02

ReadLog = Callable[[str, int, int], Awaitable[tuple[int, bytes]]]


@dataclass(eq=False)
class Viewer:
    user_id: str
    outbox: Outbox
    sessions: set[str] = field(default_factory=set)


class Fanout:
    def __init__(self, settings: RelaySettings, read_log: ReadLog) -> None:
        self.settings = settings
        self._read_log = read_log  # (session, offset, limit) -> (first offset returned, bytes): the persisted log
        self.watchers: dict[str, set[Viewer]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def viewer_low_water(self) -> int:
        """A catching-up viewer is given its next chunk once its queue is down to this."""
        return self.settings.viewer_queue_bytes // 4

    # -- live bytes ---------------------------------------------------------------------------------------------

    def deliver(
        self, stream: SessionStream, start: int, fresh: bytes, frame: bytes | None, gap_from: int | None
    ) -> None:
        """New bytes ``fresh`` at ``start`` (after a gap from ``gap_from``, if one opened) to every live viewer."""
        for attachment in list(stream.attachments.values()):
            if not attachment.live:
                continue  # its catch-up task reads these bytes from the ring or the log
            if gap_from is not None and start > attachment.next_offset:
                attachment.viewer.outbox.put(
                    Gap(session_id=stream.session_id, from_offset=attachment.next_offset, to_offset=start)
                )
                attachment.next_offset = start
            if fresh:
                self._deliver(stream, attachment, start, fresh, frame)

    def _deliver(
        self, stream: SessionStream, attachment: Attachment, start: int, data: bytes, frame: bytes | None
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
            self._catch_up(stream, attachment)
            return
        payload = data if frame is None else memoryview(frame)[HEADER_SIZE:]
        outbox.put(Output(stream.session_id, start, payload, frame))
        attachment.next_offset = end

    # -- catching up --------------------------------------------------------------------------------------------

    def _catch_up(self, stream: SessionStream, attachment: Attachment) -> None:
        attachment.live = False
        task = asyncio.create_task(self._feed(stream, attachment), name=f"catch-up-{attachment.viewer.outbox.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _feed(self, stream: SessionStream, attachment: Attachment) -> None:
        """Serve one viewer from the ring and the log at its own pace until it reaches the end, then go live."""
        outbox = attachment.viewer.outbox
        low = self.viewer_low_water()
        chunk = min(CATCH_UP_CHUNK, self.settings.viewer_queue_bytes // 2)  # its queue stays within bounds

        def attached() -> bool:
            return not outbox.closed.is_set() and stream.attachments.get(id(attachment.viewer)) is attachment

        try:
            while attached():
                if outbox.queued_bytes > low:
                    outbox.drained.clear()
                    await outbox.drained.wait()
                    continue
                at = attachment.next_offset
                if at >= stream.end:
                    # Caught up. No await between this check and the switch: the next byte goes out live.
                    attachment.live = True
                    for message in attachment.held:
                        outbox.put(message)
                    attachment.held.clear()
                    return
                if at >= stream.ring_start:
                    data = stream.ring_slice(at, chunk)
                    outbox.put(Output(stream.session_id, at, data))
                    attachment.next_offset = at + len(data)
                    continue
                start, data = await self._read_log(stream.session_id, at, min(chunk, stream.end - at))
                if not attached() or attachment.next_offset != at:
                    continue
                if start > at:
                    # Not on disk any more: retention dropped it, or it never reached the relay.
                    outbox.put(Gap(session_id=stream.session_id, from_offset=at, to_offset=start))
                    attachment.next_offset = start
                if data:
                    outbox.put(Output(stream.session_id, start, data))
                    attachment.next_offset = start + len(data)
                elif start == at and at < stream.persisted:
                    # Written up to here, and nothing kept from here to the ring: lost before reaching us.
                    outbox.put(Gap(session_id=stream.session_id, from_offset=at, to_offset=stream.ring_start))
                    attachment.next_offset = stream.ring_start
                elif start == at:
                    await asyncio.sleep(UNFLUSHED_RETRY)  # older than the ring, not yet written: in the flush
        except Exception:
            # Never leave it waiting in silence: say so and detach it; attaching again starts afresh.
            log.exception("session %s: serving viewer %s from the log failed", stream.session_id, outbox.name)
            if attached():
                self.detach(attachment.viewer, stream)
                outbox.put(
                    Error(
                        code="internal",
                        message="the relay could not read this session's output log; attach again",
                        session_id=stream.session_id,
                    )
                )

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- status -------------------------------------------------------------------------------------------------

    def publish(self, stream: SessionStream, event: SessionStatus) -> None:
        """To every viewer of the session, and to the owner's viewers that watch all their sessions."""
        told: set[int] = set()
        for attachment in stream.attachments.values():
            self._tell(attachment, event)
            told.add(id(attachment.viewer))
        for viewer in self.watchers.get(stream.user_id, ()):
            if id(viewer) not in told:
                viewer.outbox.put(event)

    @staticmethod
    def _tell(attachment: Attachment, message: Message) -> None:
        if attachment.live:
            attachment.viewer.outbox.put(message)
        else:
            attachment.held.append(message)

    def watch(self, viewer: Viewer) -> None:
        self.watchers.setdefault(viewer.user_id, set()).add(viewer)

    # -- attach and detach --------------------------------------------------------------------------------------

    def attach(
        self,
        viewer: Viewer,
        stream: SessionStream,
        *,
        start: int,
        read_only: bool,
        prelude: str = "",
        news: SessionStatus | None = None,
    ) -> None:
        """Serve ``viewer`` (which the caller checked may see the session) from ``start``, then live. ``news``
        follows the backlog when the session has something a new viewer must hear (it ended, or waits for a
        permission)."""
        viewer.outbox.put(
            Attached(
                session_id=stream.session_id,
                status=stream.status,
                from_offset=start,
                end_offset=stream.end,
                cols=stream.cols,
                rows=stream.rows,
                read_only=read_only,
                prelude=prelude,
            )
        )
        attachment = Attachment(viewer=viewer, read_only=read_only, next_offset=start)
        stream.attachments[id(viewer)] = attachment
        viewer.sessions.add(stream.session_id)
        if news is not None:
            attachment.held.append(news)
        self._catch_up(stream, attachment)

    def detach(self, viewer: Viewer, stream: SessionStream | None) -> None:
        if stream is not None:
            stream.attachments.pop(id(viewer), None)
            viewer.sessions.discard(stream.session_id)
        viewer.outbox.drained.set()  # wakes its catch-up task, which sees it is gone and ends

    def forget_viewer(self, viewer: Viewer) -> None:
        self.watchers.get(viewer.user_id, set()).discard(viewer)


def typing_viewer(stream: SessionStream | None) -> bool:
    """Someone is watching this session live with the right to type."""
    return stream is not None and any(not a.read_only for a in stream.attachments.values())
