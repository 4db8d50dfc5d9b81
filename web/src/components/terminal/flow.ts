// Flow control driven by xterm.js's write callback (docs/protocol.md "Flow control"). Pure accounting, no I/O
// (tested in flow.test.ts): bytes handed to term.write whose callback has not fired yet are "pending"; above the
// high-water mark the page asks the relay to pause this socket, below the low mark to resume. xterm.js parses in
// time slices of its own, so this bounds the tab's memory and keeps it responsive during a flood while the relay
// applies its own backpressure (and, past its grace, a gap plus the tail).

export const HIGH_WATER = 1 << 20; // 1 MiB
export const LOW_WATER = 256 << 10; // 256 KiB

export class FlowControl {
  pending = 0;
  paused = false;

  constructor(
    private readonly signal: (paused: boolean) => void,
    readonly high = HIGH_WATER,
    readonly low = LOW_WATER,
  ) {}

  /** `bytes` were handed to term.write. */
  written(bytes: number): void {
    this.pending += bytes;
    if (!this.paused && this.pending > this.high) {
      this.paused = true;
      this.signal(true);
    }
  }

  /** term.write's callback fired for `bytes`. */
  parsed(bytes: number): void {
    this.pending = Math.max(0, this.pending - bytes);
    if (this.paused && this.pending < this.low) {
      this.paused = false;
      this.signal(false);
    }
  }

  /** A new socket starts unpaused at the relay: tell it again if we are still behind. */
  reconnected(): void {
    if (this.paused) this.signal(true);
  }
}
