import { describe, expect, it } from "vitest";
import {
  decodeFrame,
  decodeMessage,
  encodeFrame,
  encodeMessage,
  FrameKind,
  HEADER_SIZE,
  ProtocolError,
} from "./protocol";

const SID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

describe("binary frames", () => {
  it("round-trips kind, session id, a 64-bit offset and the payload", () => {
    const payload = new TextEncoder().encode("hé\n");
    const encoded = encodeFrame({ kind: FrameKind.Output, sessionId: SID, offset: 2 ** 40 + 7, payload });
    expect(encoded.length).toBe(HEADER_SIZE + payload.length);
    expect(encoded[0]).toBe(1);
    expect(Array.from(encoded.subarray(1, 5))).toEqual([0x0f, 0x1e, 0x2d, 0x3c]);
    // Offset big-endian in bytes 17..24.
    expect(Array.from(encoded.subarray(17, 25))).toEqual([0, 0, 1, 0, 0, 0, 0, 7]);
    const decoded = decodeFrame(encoded.buffer as ArrayBuffer);
    expect(decoded.kind).toBe(FrameKind.Output);
    expect(decoded.sessionId).toBe(SID);
    expect(decoded.offset).toBe(2 ** 40 + 7);
    expect(new TextDecoder().decode(decoded.payload)).toBe("hé\n");
  });

  it("decodes a frame that sits inside a larger buffer", () => {
    const frame = encodeFrame({ kind: FrameKind.Input, sessionId: SID, offset: 0, payload: new Uint8Array([3]) });
    const big = new Uint8Array(frame.length + 10);
    big.set(frame, 5);
    const decoded = decodeFrame(big.subarray(5, 5 + frame.length));
    expect(decoded.kind).toBe(FrameKind.Input);
    expect(Array.from(decoded.payload)).toEqual([3]);
  });

  it("refuses a short frame, an unknown kind and a session id that is not a UUID", () => {
    expect(() => decodeFrame(new Uint8Array(10))).toThrow(ProtocolError);
    const bad = encodeFrame({ kind: FrameKind.Output, sessionId: SID, offset: 0, payload: new Uint8Array() });
    bad[0] = 9;
    expect(() => decodeFrame(bad)).toThrow(/unknown frame kind 9/);
    expect(() =>
      encodeFrame({ kind: FrameKind.Input, sessionId: "not-a-uuid", offset: 0, payload: new Uint8Array() }),
    ).toThrow(ProtocolError);
  });
});

describe("control messages", () => {
  it("encodes what the terminal sends", () => {
    expect(JSON.parse(encodeMessage({ type: "attach", session_id: SID, from_offset: 42, read_only: true }))).toEqual({
      type: "attach",
      session_id: SID,
      from_offset: 42,
      read_only: true,
    });
    expect(JSON.parse(encodeMessage({ type: "flow", paused: true }))).toEqual({ type: "flow", paused: true });
    expect(JSON.parse(encodeMessage({ type: "resize", session_id: SID, cols: 80, rows: 24 }))).toMatchObject({
      cols: 80,
      rows: 24,
    });
  });

  it("decodes the relay's messages by type", () => {
    const gap = decodeMessage(JSON.stringify({ type: "gap", session_id: SID, from_offset: 1, to_offset: 9 }));
    expect(gap.type).toBe("gap");
    if (gap.type === "gap") expect(gap.to_offset - gap.from_offset).toBe(8);
    const status = decodeMessage(
      JSON.stringify({
        type: "session_status",
        session_id: SID,
        status: "waiting_permission",
        exit_code: null,
        end_offset: 10,
        reason: null,
        ended: false,
        event: "PermissionRequest",
        permission: { request_id: "r1", tool_name: "Bash", summary: "rm -rf build", input: { command: "rm -rf build" } },
      }),
    );
    expect(status.type === "session_status" && status.permission?.tool_name).toBe("Bash");
  });

  it("decodes attached with the prelude of terminal modes, an empty one when the relay sends none", () => {
    const attached = {
      type: "attached",
      session_id: SID,
      status: "running",
      from_offset: 4096,
      end_offset: 9000,
      cols: 80,
      rows: 24,
      read_only: false,
    };
    const withModes = decodeMessage(JSON.stringify({ ...attached, prelude: "\x1b[?1049h\x1b[?25l\x1b[?2004h" }));
    expect(withModes.type === "attached" && withModes.prelude).toBe("\x1b[?1049h\x1b[?25l\x1b[?2004h");
    const without = decodeMessage(JSON.stringify(attached));
    expect(without.type === "attached" && without.prelude).toBe("");
    expect(without).toMatchObject({ from_offset: 4096, end_offset: 9000 });
    expect(() => decodeMessage(JSON.stringify({ ...attached, prelude: 7 }))).toThrow(/prelude is not a string/);
  });

  it("refuses text that is not JSON, has no type or an unknown type", () => {
    expect(() => decodeMessage("{")).toThrow(/not JSON/);
    expect(() => decodeMessage("[1]")).toThrow(/without a type/);
    expect(() => decodeMessage('{"type":"surprise"}')).toThrow(/unknown message type surprise/);
  });
});
