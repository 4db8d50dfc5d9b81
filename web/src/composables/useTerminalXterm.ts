// One xterm.js terminal for a component: addons (fit, web links, search), fitted to its element on every layout
// change, disposed on unmount. Kept out of Vue's reactivity (xterm objects must not be proxied).
import { onBeforeUnmount } from "vue";
import { Terminal, type ITheme } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { SearchAddon } from "@xterm/addon-search";
import { WebLinksAddon } from "@xterm/addon-web-links";
import "@xterm/xterm/css/xterm.css";
import type { TerminalSink } from "./useTerminalConnection";

const WRITE_PIECE = 16 << 10;

const THEME: ITheme = {
  background: "#151412",
  foreground: "#ecebe7",
  cursor: "#e0825f",
  selectionBackground: "#5a4a3a",
};

export function useTerminalXterm(options: { fontSize: number; onResize: (cols: number, rows: number) => void }) {
  const term = new Terminal({
    fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", "DejaVu Sans Mono", monospace',
    fontSize: options.fontSize,
    scrollback: 10_000,
    // A blinking cursor is a CSS animation that keeps Chromium drawing frames without pause, and each echo then
    // waits for the next one: keystroke-to-screen p50 27.3 ms blinking, 7.0 ms steady (wetty 10.6 ms), in
    // scripts/bench_browser.py (docs/benchmarks.md).
    cursorBlink: false,
    theme: THEME,
    allowProposedApi: false,
  });
  const fit = new FitAddon();
  const search = new SearchAddon();
  term.loadAddon(fit);
  term.loadAddon(search);
  term.loadAddon(new WebLinksAddon());
  let element: HTMLElement | null = null;
  let observer: ResizeObserver | null = null;
  let frame = 0;

  function refit(): void {
    if (!element || element.clientWidth === 0 || element.clientHeight === 0) return;
    const dims = fit.proposeDimensions();
    if (!dims || !Number.isFinite(dims.cols) || !Number.isFinite(dims.rows)) return;
    const cols = Math.max(2, dims.cols);
    const rows = Math.max(1, dims.rows);
    if (cols !== term.cols || rows !== term.rows) term.resize(cols, rows);
  }

  term.onResize(({ cols, rows }) => options.onResize(cols, rows));

  function mount(el: HTMLElement): void {
    element = el;
    term.open(el);
    refit();
    observer = new ResizeObserver(() => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(refit);
    });
    observer.observe(el);
  }

  /** The whole buffer (scrollback and screen) as text, wrapped lines joined: what a person could scroll through. */
  function text(): string {
    const buffer = term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < buffer.length; i++) {
      const line = buffer.getLine(i);
      if (!line) continue;
      const content = line.translateToString(true);
      if (line.isWrapped && lines.length > 0) lines[lines.length - 1] += content;
      else lines.push(content);
    }
    while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
    return lines.join("\n");
  }

  const sink: TerminalSink = {
    write: (data, parsed) => {
      // xterm parses one write() without yielding, however large: hand it pieces so a 1 MiB frame does not stall
      // the page (its write buffer yields between pieces after ~12 ms of work).
      if (data.length <= WRITE_PIECE) {
        term.write(data, parsed);
        return;
      }
      for (let start = 0; start < data.length; start += WRITE_PIECE) {
        const end = Math.min(start + WRITE_PIECE, data.length);
        const piece = typeof data === "string" ? data.slice(start, end) : data.subarray(start, end);
        term.write(piece, end === data.length ? parsed : undefined);
      }
    },
    size: () => (element && element.clientWidth > 0 ? { cols: term.cols, rows: term.rows } : null),
  };

  onBeforeUnmount(() => {
    observer?.disconnect();
    cancelAnimationFrame(frame);
    term.dispose();
  });

  return { term, search, mount, refit, text, sink };
}
