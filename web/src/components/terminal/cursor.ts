// Which output bytes a terminal has shown, by offset in the session's output stream (docs/protocol.md "Offsets").
// Pure bookkeeping, no I/O (tested in cursor.test.ts): every byte is written at most once, in order, and a hole
// (a relay `gap`, or a frame that starts past what we have) is reported so the page can mark it.

export interface Accepted {
  /** The part of the frame not shown yet (null: all of it was a duplicate). */
  data: Uint8Array | null;
  /** Bytes that will never arrive before this frame: [from, to) (null: none). */
  missing: [number, number] | null;
}

export class OutputCursor {
  /** The offset of the next byte we have not shown; null until the first attach or tail of a fresh page. */
  next: number | null;

  constructor(next: number | null = null) {
    this.next = next;
  }

  /** Where to attach from: the next byte we have not shown (null on a fresh page: the current screen). */
  get resumeFrom(): number | null {
    return this.next;
  }

  /** The relay's `attached`: the first byte it will send us. It sends a `gap` itself when it skips bytes. */
  attached(fromOffset: number): void {
    if (this.next === null) this.next = fromOffset;
  }

  /** An output frame at `offset`: trim what we already showed, drop exact duplicates. */
  accept(offset: number, payload: Uint8Array): Accepted {
    if (this.next === null) this.next = offset;
    const end = offset + payload.length;
    if (end <= this.next) return { data: null, missing: null };
    let missing: [number, number] | null = null;
    let data = payload;
    if (offset < this.next) data = payload.subarray(this.next - offset);
    else if (offset > this.next) missing = [this.next, offset];
    this.next = end;
    return { data, missing };
  }

  /** A `gap` message: bytes [from, to) are gone for good. Returns how many of them we had not shown (0: none). */
  gap(fromOffset: number, toOffset: number): number {
    if (this.next === null) {
      this.next = toOffset;
      return Math.max(0, toOffset - fromOffset);
    }
    if (toOffset <= this.next) return 0;
    const lost = toOffset - Math.max(fromOffset, this.next);
    this.next = toOffset;
    return lost;
  }
}

/**
 * A scrollback tail read from the middle of the log starts at an arbitrary byte, maybe inside an escape sequence
 * or a UTF-8 character: start it after the first newline instead (when there is one in the first 4 KiB).
 */
export function cleanTailStart(data: Uint8Array, offset: number): Uint8Array {
  if (offset === 0) return data;
  const limit = Math.min(data.length, 4096);
  for (let i = 0; i < limit; i++) if (data[i] === 0x0a) return data.subarray(i + 1);
  return data;
}

export function gapMarker(lost: number): string {
  const size =
    lost >= 1 << 20 ? `${(lost / (1 << 20)).toFixed(1)} MiB` : lost >= 1024 ? `${Math.round(lost / 1024)} KiB` : `${lost} bytes`;
  return `\r\n\x1b[0;2m[… ${size} of output skipped here; all of it: claudenest sessions logs]\x1b[0m\r\n`;
}
