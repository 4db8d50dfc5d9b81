import { describe, expect, it } from "vitest";
import { applyModifiers, composeLine, ctrlChar, encodeKey, StickyModifiers } from "./keys";

describe("encodeKey", () => {
  it("sends the emergency keys", () => {
    expect(encodeKey("esc")).toBe("\x1b");
    expect(encodeKey("tab")).toBe("\t");
    expect(encodeKey("shift-tab")).toBe("\x1b[Z");
    expect(encodeKey("ctrl-c")).toBe("\x03");
    expect(encodeKey("enter")).toBe("\r");
  });

  it("follows the application cursor mode for arrows", () => {
    expect(encodeKey("up")).toBe("\x1b[A");
    expect(encodeKey("down", undefined, false)).toBe("\x1b[B");
    expect(encodeKey("up", undefined, true)).toBe("\x1bOA");
    expect(encodeKey("left", undefined, true)).toBe("\x1bOD");
    expect(encodeKey("right", undefined, true)).toBe("\x1bOC");
  });

  it("encodes modified arrows as xterm does, in either cursor mode", () => {
    expect(encodeKey("right", { ctrl: true, alt: false })).toBe("\x1b[1;5C");
    expect(encodeKey("left", { ctrl: false, alt: true }, true)).toBe("\x1b[1;3D");
    expect(encodeKey("up", { ctrl: true, alt: true })).toBe("\x1b[1;7A");
    expect(encodeKey("page-up")).toBe("\x1b[5~");
    expect(encodeKey("page-down", { ctrl: true, alt: false })).toBe("\x1b[6;5~");
  });

  it("puts ESC in front of a key with Alt", () => {
    expect(encodeKey("esc", { ctrl: false, alt: true })).toBe("\x1b\x1b");
    expect(encodeKey("tab", { ctrl: false, alt: true })).toBe("\x1b\t");
    expect(encodeKey("backspace", { ctrl: false, alt: true })).toBe("\x1b\x7f");
  });
});

describe("modifiers on typed text", () => {
  it("turns Ctrl + a letter into its control byte", () => {
    expect(ctrlChar("c")).toBe("\x03");
    expect(ctrlChar("C")).toBe("\x03");
    expect(ctrlChar("a")).toBe("\x01");
    expect(ctrlChar("z")).toBe("\x1a");
    expect(ctrlChar("[")).toBe("\x1b");
    expect(ctrlChar(" ")).toBe("\x00");
    expect(ctrlChar("?")).toBe("\x7f");
    expect(ctrlChar("é")).toBe("é");
  });

  it("applies Ctrl to the first character and Alt as an ESC prefix", () => {
    expect(applyModifiers("d", { ctrl: true, alt: false })).toBe("\x04");
    expect(applyModifiers("b", { ctrl: false, alt: true })).toBe("\x1bb");
    expect(applyModifiers("x", { ctrl: true, alt: true })).toBe("\x1b\x18");
    expect(applyModifiers("rm", { ctrl: true, alt: false })).toBe("\x12m");
    expect(applyModifiers("😀x", { ctrl: false, alt: true })).toBe("\x1b😀x");
    expect(applyModifiers("plain", { ctrl: false, alt: false })).toBe("plain");
  });
});

describe("StickyModifiers", () => {
  it("arms a modifier for the next key only", () => {
    const sticky = new StickyModifiers();
    sticky.tap("ctrl");
    expect(sticky.active).toEqual({ ctrl: true, alt: false });
    expect(sticky.consume()).toEqual({ ctrl: true, alt: false });
    expect(sticky.consume()).toEqual({ ctrl: false, alt: false });
  });

  it("locks on a second tap and turns off on a third", () => {
    const sticky = new StickyModifiers();
    sticky.tap("alt");
    sticky.tap("alt");
    expect(sticky.alt).toBe("locked");
    sticky.consume();
    sticky.consume();
    expect(sticky.active.alt).toBe(true);
    sticky.tap("alt");
    expect(sticky.alt).toBe("off");
  });

  it("combines Ctrl and Alt, each used up on its own terms", () => {
    const sticky = new StickyModifiers();
    sticky.tap("ctrl");
    sticky.tap("alt");
    sticky.tap("alt");
    expect(applyModifiers("f", sticky.consume())).toBe("\x1b\x06");
    expect(sticky.active).toEqual({ ctrl: false, alt: true });
    sticky.clear();
    expect(sticky.active).toEqual({ ctrl: false, alt: false });
  });
});

describe("composeLine", () => {
  it("sends the whole line with Enter, each newline as CR", () => {
    expect(composeLine("echo hi")).toBe("echo hi\r");
    expect(composeLine("")).toBe("\r");
    expect(composeLine("a\nb")).toBe("a\rb\r");
  });
});
