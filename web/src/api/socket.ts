// One WebSocket to /ws/client: a single-use ticket from POST /api/ws-ticket (browsers cannot set headers), the
// hello handshake, then typed messages and output frames. Reconnecting and resuming are the caller's policy
// (composables/useTerminalConnection.ts, composables/useLiveSessions.ts).
import { auth } from "./client";
import {
  decodeFrame,
  decodeMessage,
  encodeFrame,
  encodeMessage,
  FrameKind,
  PROTOCOL_VERSION,
  ProtocolError,
  type ClientMessage,
  type Frame,
  type ServerMessage,
} from "./protocol";

export interface SocketHandlers {
  message?: (message: ServerMessage) => void;
  output?: (frame: Frame) => void;
  close?: (code: number, reason: string) => void;
}

const HELLO_TIMEOUT_MS = 10_000;

export class RelaySocket {
  private ws: WebSocket | null = null;
  private closedByUs = false;

  constructor(private readonly handlers: SocketHandlers) {}

  get open(): boolean {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Bytes queued in the browser but not yet sent (keystrokes during a stall). */
  get bufferedAmount(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  /** Resolves once the relay's welcome arrived; rejects when the ticket, the upgrade or the hello fails. */
  async connect(): Promise<void> {
    const { ticket } = await auth.wsTicket();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws/client?ticket=${encodeURIComponent(ticket)}`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.closedByUs = false;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error("the relay did not answer the hello"));
        ws.close();
      }, HELLO_TIMEOUT_MS);
      let welcomed = false;
      ws.onopen = () =>
        ws.send(encodeMessage({ type: "client_hello", protocol: PROTOCOL_VERSION, client_version: "dashboard" }));
      ws.onmessage = (event: MessageEvent<string | ArrayBuffer>) => {
        if (this.ws !== ws) return; // a socket we already replaced or closed
        let message: ServerMessage;
        try {
          if (typeof event.data !== "string") {
            this.handlers.output?.(decodeFrame(event.data));
            return;
          }
          message = decodeMessage(event.data);
        } catch (error) {
          // A newer relay may send message types this page does not know yet: skip them, keep the connection.
          if (error instanceof ProtocolError) {
            console.warn(error.message);
            return;
          }
          throw error;
        }
        if (!welcomed && message.type === "welcome") {
          welcomed = true;
          clearTimeout(timer);
          resolve();
          return;
        }
        this.handlers.message?.(message);
      };
      ws.onclose = (event) => {
        clearTimeout(timer);
        if (!welcomed) reject(new Error(event.reason || `connection closed (${event.code})`));
        if (this.ws === ws) this.ws = null;
        if (!this.closedByUs) this.handlers.close?.(event.code, event.reason);
      };
    });
  }

  send(message: ClientMessage): void {
    if (this.open) this.ws!.send(encodeMessage(message));
  }

  sendInput(sessionId: string, data: Uint8Array): boolean {
    if (!this.open) return false;
    this.ws!.send(encodeFrame({ kind: FrameKind.Input, sessionId, offset: 0, payload: data }));
    return true;
  }

  close(): void {
    this.closedByUs = true;
    this.ws?.close(1000, "closed by the page");
    this.ws = null;
  }
}
