"""WebSocket endpoints against bad, unauthorized, oversized and out-of-order input: clear answers, nothing crashes."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claudenest.client import RelayClient
from claudenest.protocol import (
    PROTOCOL_VERSION,
    AgentHello,
    Attach,
    Attached,
    ClientHello,
    Error,
    Flow,
    Frame,
    FrameKind,
    Welcome,
    decode_frame,
    decode_message,
    encode_frame,
    encode_message,
)
from tests.e2e.conftest import Stack
from tests.e2e.harness import cli, timeout


def ws_url(stack: Stack, path: str) -> str:
    return stack.relay.url.replace("http://", "ws://") + path


async def viewer(stack: Stack) -> websockets.ClientConnection:
    return await RelayClient(stack.relay.url, stack.user.token).connect_viewer()


async def next_message(ws: websockets.ClientConnection) -> object:
    while True:
        raw = await asyncio.wait_for(ws.recv(), timeout(10))
        if isinstance(raw, str):
            return decode_message(raw)


async def test_upgrades_without_the_right_credential_are_refused_with_a_status(stack: Stack) -> None:
    cases = [
        ("/ws/agent", {}, 401),
        ("/ws/agent", {"Authorization": f"Bearer {stack.user.token}"}, 403),
        ("/ws/agent", {"Authorization": "Bearer mn_wrong-wrong-wrong-wrong-wrong"}, 401),
        ("/ws/client", {}, 401),
        ("/ws/client", {"Authorization": "Bearer cn_wrong-wrong-wrong-wrong-wrong"}, 401),
    ]
    for path, headers, status in cases:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(ws_url(stack, path), additional_headers=headers)
        assert refused.value.response.status_code == status, (path, headers)
    # Browsers: a ticket is single use and needs the relay's own Origin.
    ticket = stack.user.api("POST", "/api/ws-ticket").json()["ticket"]
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(ws_url(stack, f"/ws/client?ticket={ticket}"), origin="http://evil.example")
    ticket = stack.user.api("POST", "/api/ws-ticket").json()["ticket"]
    ws = await websockets.connect(ws_url(stack, f"/ws/client?ticket={ticket}"), origin=stack.relay.url)
    await ws.close()
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(ws_url(stack, f"/ws/client?ticket={ticket}"), origin=stack.relay.url)


async def test_wrong_first_message_or_protocol_closes_with_a_reason(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.user.token}"}
    for first in ("not json", json.dumps({"type": "client_hello", "protocol": 99, "client_version": "x"})):
        async with websockets.connect(ws_url(stack, "/ws/client"), additional_headers=headers) as ws:
            await ws.send(first)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout(10))
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4002
            assert "client_hello" in closed.value.rcvd.reason or "protocol 99" in closed.value.rcvd.reason


async def test_malformed_and_out_of_order_messages_get_errors_and_the_connection_lives(stack: Stack) -> None:
    sid = stack.user.api(
        "POST", "/api/sessions", json={"machine_id": stack.agent.machine_id, "command": ["cat"]}
    ).json()["session"]["id"]
    ws = await viewer(stack)
    try:
        bad = [
            "{",
            "[]",
            json.dumps({"type": "nope"}),
            json.dumps({"type": "attach"}),
            json.dumps({"type": "attach", "session_id": "not-a-uuid"}),
            encode_message(ClientHello(protocol=PROTOCOL_VERSION, client_version="again")),
            encode_message(Attach(session_id=str(uuid.uuid4()))),
        ]
        for text in bad:
            await ws.send(text)
            answer = await next_message(ws)
            assert isinstance(answer, Error), text
        for frame in (b"\x02short", encode_frame(Frame(FrameKind.INPUT, sid, 0, b"x")), b"\x07" + b"\x00" * 30):
            await ws.send(frame)  # too short; input before attaching; unknown kind
            assert isinstance(await next_message(ws), Error)
        await ws.send(encode_message(Attach(session_id=sid)))
        assert isinstance(await next_message(ws), Attached)
        await ws.send(encode_frame(Frame(FrameKind.INPUT, sid, 0, b"still-alive\n")))
        seen = b""
        while b"still-alive" not in seen:
            raw = await asyncio.wait_for(ws.recv(), timeout(10))
            if isinstance(raw, bytes):
                seen += raw
    finally:
        await ws.close()


async def test_another_users_session_is_not_found_over_the_socket(stack: Stack) -> None:
    sid = stack.user.api(
        "POST", "/api/sessions", json={"machine_id": stack.agent.machine_id, "command": ["cat"]}
    ).json()["session"]["id"]
    created = cli(stack.relay.home, "relay", "user", "add", "intruder@example.com", "--json")
    token = json.loads(created.stdout)["token"]
    ws = await RelayClient(stack.relay.url, token).connect_viewer()
    try:
        await ws.send(encode_message(Attach(session_id=sid)))
        answer = await next_message(ws)
        assert isinstance(answer, Error)
        assert answer.code == "not_found"
    finally:
        await ws.close()


async def test_oversized_frames_close_with_1009_and_the_relay_keeps_serving(stack: Stack) -> None:
    ws = await viewer(stack)

    async def send_then_read() -> None:
        # The relay may close before the client has finished sending 2 MiB; then send() is what sees the close.
        await ws.send(b"\x02" + b"\x00" * (2 << 20))
        await asyncio.wait_for(ws.recv(), timeout(10))

    with pytest.raises(websockets.ConnectionClosed) as closed:
        await send_then_read()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    assert stack.user.api("GET", "/api/me").status_code == 200


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=64),
        st.builds(
            lambda kind, sid, offset, payload: bytes([kind]) + sid + offset.to_bytes(8, "big") + payload,
            st.integers(0, 255),
            st.binary(min_size=16, max_size=16),
            st.integers(0, 2**64 - 1),
            st.binary(max_size=64),
        ),
        st.text(max_size=64),
    )
)
def test_fuzzed_frames_never_take_the_relay_down(stack: Stack, data: bytes | str) -> None:
    async def exchange() -> None:
        ws = await viewer(stack)
        try:
            await ws.send(data)
            answer: str | bytes | int
            try:
                answer = await asyncio.wait_for(ws.recv(), timeout(10))
            except websockets.ConnectionClosed as exc:
                answer = exc.rcvd.code if exc.rcvd else 0
            # An error message, or a protocol-level close; never a crash or a silent hang.
            assert answer in (1002, 1007, 1009) or isinstance(decode_message(answer), Error)  # type: ignore[arg-type]
        finally:
            await ws.close()

    asyncio.run(exchange())
    assert stack.user.api("GET", "/healthz").status_code == 200


@pytest.fixture(scope="module")
def fuzz_machine_token(stack: Stack) -> str:
    """A second machine, paired over the HTTP API, whose agent connection the fuzzer plays."""
    started = httpx.post(
        stack.relay.url + "/api/pairing/initiate",
        json={"hostname": "fuzz", "platform": "test", "agent_version": "0"},
        timeout=timeout(10),
    ).json()
    stack.user.api("POST", f"/api/pairing/{started['code']}/approve", json={"name": "fuzz"})
    headers = {"X-Device-Secret": started["device_secret"]}
    deadline = time.monotonic() + timeout(20)
    while time.monotonic() < deadline:
        time.sleep(3.1)
        polled = httpx.get(stack.relay.url + f"/api/pairing/{started['code']}", headers=headers, timeout=timeout(10))
        if polled.json().get("status") == "completed":
            return str(polled.json()["machine_token"])
    raise AssertionError("pairing did not complete")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.builds(
            lambda kind, offset, payload: bytes([kind]) + uuid.uuid4().bytes + offset.to_bytes(8, "big") + payload,
            st.integers(0, 255),
            st.integers(0, 2**64 - 1),
            st.binary(max_size=64),
        ),
        st.binary(max_size=40),
        st.sampled_from(
            [
                json.dumps(
                    {"type": "session_started", "session_id": str(uuid.uuid4()), "pid": 1, "command": [], "cwd": "/"}
                ),
                json.dumps(
                    {"type": "session_exited", "session_id": str(uuid.uuid4()), "status": "exited", "end_offset": 0}
                ),
                json.dumps({"type": "gap", "session_id": str(uuid.uuid4()), "from_offset": 0, "to_offset": 9}),
                json.dumps({"type": "attach", "session_id": str(uuid.uuid4())}),
                json.dumps({"type": "session_exited", "session_id": "x", "status": "gone", "end_offset": -1}),
            ]
        ),
        st.text(max_size=64),
    )
)
def test_fuzzed_agent_frames_never_disturb_the_relay_or_other_sessions(
    stack: Stack, fuzz_machine_token: str, data: bytes | str
) -> None:
    async def exchange() -> None:
        async with websockets.connect(
            ws_url(stack, "/ws/agent"), additional_headers={"Authorization": f"Bearer {fuzz_machine_token}"}
        ) as ws:
            hello = AgentHello(protocol=PROTOCOL_VERSION, agent_version="fuzz", hostname="fuzz", platform="test")
            await ws.send(encode_message(hello))
            assert isinstance(decode_message(await ws.recv()), Welcome)
            await ws.send(data)
            answer: str | bytes | int
            try:
                answer = await asyncio.wait_for(ws.recv(), timeout(10))
            except websockets.ConnectionClosed as exc:
                answer = exc.rcvd.code if exc.rcvd else 0
            assert answer in (1002, 1007, 1009) or isinstance(decode_message(answer), Error)  # type: ignore[arg-type]

    asyncio.run(exchange())
    real_agent = stack.user.api("GET", f"/api/machines/{stack.agent.machine_id}").json()["machine"]
    assert real_agent["status"] == "online"


def test_bad_peers_leave_no_tracebacks_or_errors_in_the_relay_log(stack: Stack) -> None:
    log = stack.relay.proc.output  # type: ignore[union-attr]
    assert "Traceback" not in log
    assert " ERROR " not in log


async def test_a_viewer_that_pauses_its_flow_gets_nothing_until_it_resumes_and_loses_nothing(stack: Stack) -> None:
    """The dashboard pauses while xterm.js has too much output waiting to be drawn, then resumes."""
    session = stack.user.api(
        "POST",
        "/api/sessions",
        json={"machine_id": stack.agent.machine_id, "command": ["bash", "--norc", "--noprofile"]},
    ).json()["session"]
    sid = session["id"]
    ws = await viewer(stack)
    try:
        await ws.send(encode_message(Attach(session_id=sid, from_offset=0)))
        attached = await next_message(ws)
        assert isinstance(attached, Attached)
        received = bytearray()

        async def drain(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    return
                if isinstance(raw, bytes):
                    frame = decode_frame(raw)
                    assert frame.offset == attached.from_offset + len(received), "a byte lost or doubled"
                    received.extend(frame.payload)

        await drain(1.0)  # the prompt
        await ws.send(encode_message(Flow(paused=True)))
        await asyncio.sleep(0.2)
        before = len(received)
        stack.user.api("POST", f"/api/sessions/{sid}/input", json={"text": "seq 1 2000\n"})
        await drain(timeout(1.5))
        assert len(received) == before, "output arrived while paused"
        await ws.send(encode_message(Flow(paused=False)))
        for _ in range(100):
            await drain(0.3)
            if b"\r\n2000\r\n" in received:
                break
        text = re.sub(rb"\x1b\[[?0-9;]*[a-zA-Z]|\r", b"", bytes(received))  # bash's bracketed-paste switches
        lines = [line for line in text.split(b"\n") if line.isdigit()]
        assert lines == [str(n).encode() for n in range(1, 2001)]
    finally:
        await ws.close()
        stack.user.api("POST", f"/api/sessions/{sid}/terminate")
