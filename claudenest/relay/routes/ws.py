"""WebSocket endpoints: ``/ws/agent`` for agents (machine token) and ``/ws/client`` for viewers.

Nothing a peer sends can take the relay down: malformed input is answered with an ``error`` message; frames over
the size limit are closed with 1009 by the server itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from claudenest import __version__
from claudenest.errors import AuthError, ClaudenestError, Conflict, NotFound, ProtocolError
from claudenest.protocol import (
    PROTOCOL_VERSION,
    AgentHello,
    Attach,
    ClientHello,
    Detach,
    Error,
    Flow,
    FrameKind,
    Message,
    Resize,
    Watch,
    Watching,
    Welcome,
    decode_frame,
    decode_message,
    encode_message,
)
from claudenest.relay.auth import authenticate_machine, authenticate_user
from claudenest.relay.hub import AgentPeer, Hub, Viewer
from claudenest.relay.outbox import Outbox
from claudenest.relay.problems import domain_error_response, status_for
from claudenest.relay.security import origin_matches
from claudenest.store import Store

log = logging.getLogger(__name__)
router = APIRouter()

HELLO_TIMEOUT = 10.0
CLOSE_PROTOCOL = 4002


async def _deny(websocket: WebSocket, exc: ClaudenestError) -> None:
    await websocket.send_denial_response(domain_error_response(exc))


async def _hello(websocket: WebSocket, expected: type[Message]) -> Any:
    try:
        raw = await asyncio.wait_for(websocket.receive_text(), HELLO_TIMEOUT)
        hello = decode_message(raw)
    except WebSocketDisconnect:
        return None  # the peer left before saying hello
    except (TimeoutError, ProtocolError, KeyError) as exc:
        await websocket.close(CLOSE_PROTOCOL, f"expected {expected.type} first: {exc}"[:120])
        return None
    if not isinstance(hello, expected):
        await websocket.close(CLOSE_PROTOCOL, f"expected {expected.type} first, got {hello.type}")
        return None
    if getattr(hello, "protocol", None) != PROTOCOL_VERSION:
        await websocket.close(
            CLOSE_PROTOCOL,
            f"protocol {getattr(hello, 'protocol', '?')} not supported; relay speaks {PROTOCOL_VERSION}",
        )
        return None
    return hello


async def _receive(websocket: WebSocket) -> str | bytes | None:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    if message.get("bytes") is not None:
        return bytes(message["bytes"])
    return str(message.get("text") or "")


@router.websocket("/ws/agent")
async def agent_socket(websocket: WebSocket) -> None:
    store: Store = websocket.app.state.store
    hub: Hub = websocket.app.state.hub
    try:
        machine = await authenticate_machine(websocket, store)
    except AuthError as exc:
        await _deny(websocket, exc)
        return
    await websocket.accept()
    hello: AgentHello | None = await _hello(websocket, AgentHello)
    if hello is None:
        return
    await store.machines.seen(
        machine["id"],
        ip=websocket.client.host if websocket.client else None,
        hostname=hello.hostname,
        platform=hello.platform,
        agent_version=hello.agent_version,
        claude_version=hello.claude_version,
    )
    await websocket.send_text(
        encode_message(Welcome(protocol=PROTOCOL_VERSION, relay_version=__version__, machine_id=machine["id"]))
    )

    async def close(code: int, reason: str) -> None:
        await websocket.close(code, reason)

    agent = AgentPeer(
        machine=machine,
        outbox=Outbox(f"agent-{machine['id'][:8]}", websocket.send_text, websocket.send_bytes),
        close=close,
    )
    await hub.agent_connected(agent, hello)
    log.info("agent %s (%s) connected", machine["name"], machine["id"])
    try:
        while (data := await _receive(websocket)) is not None:
            try:
                if isinstance(data, bytes):
                    frame = decode_frame(data)
                    await hub.agent_frame(agent, frame, data)
                    # Not reading while the disk is behind: TCP then slows the agent, which stops reading the PTY,
                    # so bytes wait instead of being dropped.
                    await hub.after_frame()
                else:
                    await hub.agent_message(agent, decode_message(data))
            except (ProtocolError, NotFound, Conflict) as exc:
                agent.outbox.put(Error(code="bad_message", message=str(exc)))
    except WebSocketDisconnect:
        pass
    finally:
        await hub.agent_disconnected(agent)
        with contextlib.suppress(Exception):
            await store.machines.seen(machine["id"])
        log.info("agent %s (%s) disconnected", machine["name"], machine["id"])


@router.websocket("/ws/client")
async def client_socket(websocket: WebSocket) -> None:
    store: Store = websocket.app.state.store
    hub: Hub = websocket.app.state.hub
    try:
        if websocket.headers.get("authorization"):
            user = (await authenticate_user(websocket, store, allow_cookie=False)).user
        else:
            ticket = websocket.query_params.get("ticket", "")
            user_id = websocket.app.state.tickets.redeem(ticket) if ticket else None
            if user_id is None:
                raise AuthError("send 'Authorization: Bearer cn_...' or a fresh ?ticket= from POST /api/ws-ticket")
            if not origin_matches(websocket, websocket.app.state.settings.public_origin):
                raise AuthError("Origin not allowed")
            user = await store.users.by_id(user_id)
    except (AuthError, NotFound) as exc:
        await _deny(websocket, exc if isinstance(exc, AuthError) else AuthError(str(exc)))
        return
    await websocket.accept()
    hello: ClientHello | None = await _hello(websocket, ClientHello)
    if hello is None:
        return
    await websocket.send_text(
        encode_message(Welcome(protocol=PROTOCOL_VERSION, relay_version=__version__, user_id=user["id"]))
    )
    viewer = Viewer(
        user_id=user["id"],
        outbox=Outbox(
            f"viewer-{user['id'][:8]}",
            websocket.send_text,
            websocket.send_bytes,
            low_water=hub.fanout.viewer_low_water(),
        ),
    )
    viewer.outbox.start()
    try:
        while (data := await _receive(websocket)) is not None:
            try:
                await _viewer_input(hub, viewer, data)
            except ClaudenestError as exc:
                viewer.outbox.put(Error(code=status_for(exc)[1], message=str(exc), session_id=_sid(data)))
    except WebSocketDisconnect:
        pass
    finally:
        hub.sessions.viewer_gone(viewer)
        await viewer.outbox.stop()


def _sid(data: str | bytes) -> str | None:
    with contextlib.suppress(Exception):
        if isinstance(data, bytes):
            return decode_frame(data).session_id
        return getattr(decode_message(data), "session_id", None)
    return None


async def _viewer_input(hub: Hub, viewer: Viewer, data: str | bytes) -> None:
    if isinstance(data, bytes):
        frame = decode_frame(data, max_size=hub.settings.max_frame_bytes)
        if frame.kind is not FrameKind.INPUT:
            raise ProtocolError("viewers send only input frames")
        if hub.attachment(viewer, frame.session_id).read_only:
            raise Conflict("this viewer is attached read-only")
        await hub.sessions.send_input(frame.session_id, frame.payload)
        return
    message = decode_message(data)
    if isinstance(message, Attach):
        await hub.sessions.attach(viewer, message)
    elif isinstance(message, Detach):
        hub.sessions.detach(viewer, message.session_id)
    elif isinstance(message, Watch):
        hub.fanout.watch(viewer)
        viewer.outbox.put(Watching())
    elif isinstance(message, Flow):
        if message.paused:
            viewer.outbox.pause()
        else:
            viewer.outbox.resume()
    elif isinstance(message, Resize):
        if hub.attachment(viewer, message.session_id).read_only:
            raise Conflict("this viewer is attached read-only")
        await hub.sessions.resize(message.session_id, message.cols, message.rows)
    else:
        raise ProtocolError(f"viewers do not send {message.type}")
