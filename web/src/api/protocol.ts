// The wire protocol of docs/protocol.md, browser side: pure encode/decode, no sockets (tested in protocol.test.ts).

export const PROTOCOL_VERSION = 1;
export const HEADER_SIZE = 25; // kind (1) | session id (16) | offset (8, big-endian)

export enum FrameKind {
  Output = 1,
  Input = 2,
}

export interface Frame {
  kind: FrameKind;
  sessionId: string;
  offset: number;
  payload: Uint8Array;
}

export class ProtocolError extends Error {
  override name = "ProtocolError";
}

function uuidToBytes(id: string): Uint8Array {
  const hex = id.replace(/-/g, "");
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new ProtocolError(`not a canonical session id: ${id}`);
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

function bytesToUuid(bytes: Uint8Array): string {
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function encodeFrame(frame: Frame): Uint8Array {
  const data = new Uint8Array(HEADER_SIZE + frame.payload.length);
  const view = new DataView(data.buffer);
  data[0] = frame.kind;
  data.set(uuidToBytes(frame.sessionId), 1);
  view.setBigUint64(17, BigInt(frame.offset));
  data.set(frame.payload, HEADER_SIZE);
  return data;
}

export function decodeFrame(buffer: ArrayBuffer | Uint8Array): Frame {
  const data = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  if (data.length < HEADER_SIZE) throw new ProtocolError(`binary frame of ${data.length} bytes is shorter than the header`);
  const kind = data[0];
  if (kind !== FrameKind.Output && kind !== FrameKind.Input) throw new ProtocolError(`unknown frame kind ${kind}`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return {
    kind,
    sessionId: bytesToUuid(data.subarray(1, 17)),
    offset: Number(view.getBigUint64(17)),
    payload: data.subarray(HEADER_SIZE),
  };
}

// ---- control messages (JSON text frames) ---------------------------------------------------------------------

export interface PermissionRequest {
  request_id: string;
  tool_name: string;
  summary: string;
  input?: Record<string, unknown>;
}

export type ServerMessage =
  | { type: "welcome"; protocol: number; relay_version: string; user_id: string }
  | {
      type: "attached";
      session_id: string;
      status: string;
      from_offset: number;
      end_offset: number;
      cols: number;
      rows: number;
      read_only: boolean;
      /**
       * Escape sequences for the terminal modes in force before `from_offset` (alternate screen, hidden cursor,
       * bracketed paste, mouse, application cursor keys): written to the terminal before the first output byte of
       * this attach. Empty when the relay sends none.
       */
      prelude: string;
    }
  | { type: "gap"; session_id: string; from_offset: number; to_offset: number }
  | {
      type: "session_status";
      session_id: string;
      status: string;
      exit_code: number | null;
      end_offset: number | null;
      reason: string | null;
      ended: boolean;
      event: string | null;
      permission: PermissionRequest | null;
    }
  | { type: "resize"; session_id: string; cols: number; rows: number }
  | { type: "watching" }
  | { type: "error"; code: string; message: string; session_id: string | null };

export type ClientMessage =
  | { type: "client_hello"; protocol: number; client_version: string }
  | { type: "attach"; session_id: string; from_offset: number | null; read_only: boolean }
  | { type: "detach"; session_id: string }
  | { type: "watch" }
  | { type: "resize"; session_id: string; cols: number; rows: number }
  | { type: "flow"; paused: boolean };

const KNOWN = new Set(["welcome", "attached", "gap", "session_status", "resize", "watching", "error"]);

export function decodeMessage(text: string): ServerMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolError("control message is not JSON");
  }
  if (!value || typeof value !== "object" || typeof (value as { type?: unknown }).type !== "string") {
    throw new ProtocolError("control message without a type");
  }
  const type = (value as { type: string }).type;
  if (!KNOWN.has(type)) throw new ProtocolError(`unknown message type ${type}`);
  if (type === "attached") {
    const prelude = (value as { prelude?: unknown }).prelude ?? "";
    if (typeof prelude !== "string") throw new ProtocolError("attached.prelude is not a string");
    return { ...(value as object), prelude } as ServerMessage;
  }
  return value as ServerMessage;
}

export function encodeMessage(message: ClientMessage): string {
  return JSON.stringify(message);
}
