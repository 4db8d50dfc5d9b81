// The phone key bar's state: sticky Ctrl and Alt for the next key (from the bar, the keyboard or the compose box),
// and the bytes of each key in the terminal's current cursor mode (components/terminal/keys.ts).
import { reactive } from "vue";
import { applyModifiers, encodeKey, StickyModifiers, type KeyName, type Modifiers } from "@/components/terminal/keys";

export interface KeyBarOptions {
  send: (data: string) => void;
  /** xterm's term.modes.applicationCursorKeysMode, read at the moment of the key press. */
  applicationCursor: () => boolean;
}

export function useKeyBar(options: KeyBarOptions) {
  const sticky = reactive(new StickyModifiers());

  function press(key: KeyName): void {
    options.send(encodeKey(key, sticky.consume(), options.applicationCursor()));
  }

  function tap(mod: keyof Modifiers): void {
    sticky.tap(mod);
  }

  /** Typed text (xterm's onData, the compose box) with whatever modifier is armed; one-shot ones are used up. */
  function typed(data: string): string {
    if (sticky.ctrl === "off" && sticky.alt === "off") return data;
    return applyModifiers(data, sticky.consume());
  }

  return { sticky, press, tap, typed };
}
