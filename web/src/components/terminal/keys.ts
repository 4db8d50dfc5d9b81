// What the phone key bar sends: xterm's encodings of keys and modifiers, pure (tested in keys.test.ts).

export type KeyName =
  | "esc"
  | "tab"
  | "shift-tab"
  | "up"
  | "down"
  | "right"
  | "left"
  | "home"
  | "end"
  | "page-up"
  | "page-down"
  | "enter"
  | "backspace"
  | "ctrl-c";

export interface Modifiers {
  ctrl: boolean;
  alt: boolean;
}

export const NO_MODIFIERS: Modifiers = { ctrl: false, alt: false };

const ESC = "\x1b";
const ARROWS: Record<string, string> = { up: "A", down: "B", right: "C", left: "D", home: "H", end: "F" };

/** The bytes of a key bar key, as xterm would send them (application cursor mode: ESC O A instead of ESC [ A). */
export function encodeKey(key: KeyName, mods: Modifiers = NO_MODIFIERS, applicationCursor = false): string {
  const final = ARROWS[key];
  if (final !== undefined) {
    const code = 1 + (mods.alt ? 2 : 0) + (mods.ctrl ? 4 : 0);
    if (code > 1) return `${ESC}[1;${code}${final}`;
    return applicationCursor ? `${ESC}O${final}` : `${ESC}[${final}`;
  }
  let data: string;
  switch (key) {
    case "esc":
      data = ESC;
      break;
    case "tab":
      data = "\t";
      break;
    case "shift-tab":
      return `${ESC}[Z`;
    case "page-up":
    case "page-down": {
      const code = 1 + (mods.alt ? 2 : 0) + (mods.ctrl ? 4 : 0);
      const n = key === "page-up" ? 5 : 6;
      return code > 1 ? `${ESC}[${n};${code}~` : `${ESC}[${n}~`;
    }
    case "enter":
      data = "\r";
      break;
    case "backspace":
      data = mods.ctrl ? "\x08" : "\x7f";
      return mods.alt ? ESC + data : data;
    case "ctrl-c":
      return "\x03";
    default:
      return "";
  }
  return mods.alt ? ESC + data : data;
}

const CTRL_SYMBOLS: Record<string, string> = {
  "@": "\x00",
  " ": "\x00",
  "2": "\x00",
  "[": "\x1b",
  "3": "\x1b",
  "\\": "\x1c",
  "4": "\x1c",
  "]": "\x1d",
  "5": "\x1d",
  "^": "\x1e",
  "6": "\x1e",
  "_": "\x1f",
  "7": "\x1f",
  "/": "\x1f",
  "?": "\x7f",
  "8": "\x7f",
};

/** Ctrl + one character: a letter becomes its control byte (Ctrl-C -> 0x03); others as xterm maps them. */
export function ctrlChar(ch: string): string {
  if (/^[a-zA-Z]$/.test(ch)) return String.fromCharCode(ch.charCodeAt(0) & 0x1f);
  return CTRL_SYMBOLS[ch] ?? ch;
}

/** Typed text with sticky modifiers: Ctrl applies to the first character, Alt puts ESC in front. */
export function applyModifiers(data: string, mods: Modifiers): string {
  if (!data || (!mods.ctrl && !mods.alt)) return data;
  const first = String.fromCodePoint(data.codePointAt(0)!);
  const rest = data.slice(first.length);
  const head = mods.ctrl ? ctrlChar(first) : first;
  return (mods.alt ? ESC : "") + head + rest;
}

export type StickyState = "off" | "once" | "locked";

/** Sticky Ctrl and Alt: a tap arms the modifier for the next key, a second tap locks it, a third turns it off. */
export class StickyModifiers {
  ctrl: StickyState = "off";
  alt: StickyState = "off";

  tap(mod: keyof Modifiers): void {
    const next: Record<StickyState, StickyState> = { off: "once", once: "locked", locked: "off" };
    this[mod] = next[this[mod]];
  }

  get active(): Modifiers {
    return { ctrl: this.ctrl !== "off", alt: this.alt !== "off" };
  }

  /** The modifiers for the key being sent now; one-shot ones are used up. */
  consume(): Modifiers {
    const mods = this.active;
    if (this.ctrl === "once") this.ctrl = "off";
    if (this.alt === "once") this.alt = "off";
    return mods;
  }

  clear(): void {
    this.ctrl = "off";
    this.alt = "off";
  }
}

/** Text from the compose box as one write: lines end with Enter (CR), as typed at a terminal. */
export function composeLine(text: string): string {
  return text.replace(/\r?\n/g, "\r") + "\r";
}
