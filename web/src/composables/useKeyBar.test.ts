import { describe, expect, it } from "vitest";
import { useCompose } from "./useCompose";
import { useKeyBar } from "./useKeyBar";

describe("useKeyBar", () => {
  it("sends keys in the terminal's cursor mode at the moment of the press", () => {
    const sent: string[] = [];
    let appCursor = false;
    const bar = useKeyBar({ send: (data) => sent.push(data), applicationCursor: () => appCursor });
    bar.press("up");
    appCursor = true;
    bar.press("up");
    expect(sent).toEqual(["\x1b[A", "\x1bOA"]);
  });

  it("a tapped Ctrl modifies the next key from the bar or the keyboard, once", () => {
    const sent: string[] = [];
    const bar = useKeyBar({ send: (data) => sent.push(data), applicationCursor: () => false });
    bar.tap("ctrl");
    expect(bar.typed("c")).toBe("\x03");
    expect(bar.typed("c")).toBe("c");
    bar.tap("ctrl");
    bar.press("left");
    bar.press("left");
    expect(sent).toEqual(["\x1b[1;5D", "\x1b[D"]);
    bar.tap("alt");
    bar.tap("alt"); // locked
    expect(bar.typed("b")).toBe("\x1bb");
    expect(bar.typed("f")).toBe("\x1bf");
    expect(bar.sticky.alt).toBe("locked");
  });
});

describe("useCompose", () => {
  const key = (init: KeyboardEventInit) => new KeyboardEvent("keydown", { key: "Enter", cancelable: true, ...init });

  it("sends the whole line with Enter and clears the box", () => {
    const sent: string[] = [];
    const compose = useCompose((data) => {
      sent.push(data);
      return true;
    });
    compose.text.value = "git status";
    const enter = key({});
    compose.keydown(enter);
    expect(enter.defaultPrevented).toBe(true);
    expect(sent).toEqual(["git status\r"]);
    expect(compose.text.value).toBe("");
  });

  it("keeps the text when it could not be sent", () => {
    const compose = useCompose(() => false);
    compose.text.value = "make deploy";
    compose.submit();
    expect(compose.text.value).toBe("make deploy");
  });

  it("Shift+Enter adds a line; a newline inserted without a keydown (Android) sends", () => {
    const sent: string[] = [];
    const compose = useCompose((data) => {
      sent.push(data);
      return true;
    });
    compose.keydown(key({ shiftKey: true }));
    compose.text.value = "first\n";
    compose.input();
    expect(sent).toEqual([]);
    compose.text.value = "first\nsecond\n";
    compose.input();
    expect(sent).toEqual(["first\rsecond\r"]);
    expect(compose.text.value).toBe("");
  });

  it("leaves Enter alone while an input method composes", () => {
    const sent: string[] = [];
    const compose = useCompose((data) => {
      sent.push(data);
      return true;
    });
    compose.text.value = "にほ";
    compose.keydown(key({ isComposing: true }));
    expect(sent).toEqual([]);
  });
});
