// The compose box: a real <textarea> whose whole line goes to the terminal at once with Enter. Android keyboards
// (predictive text, voice input, swipe) feed xterm.js's hidden textarea unreliably; a plain textarea does not.
import { ref } from "vue";
import { composeLine } from "@/components/terminal/keys";

export function useCompose(send: (data: string) => boolean | void) {
  const text = ref("");
  let shiftNewline = false;

  function submit(): void {
    const line = text.value;
    if (send(composeLine(line)) === false) return; // not connected: keep the text to send again
    text.value = "";
  }

  /** Enter sends (Shift+Enter adds a line); composition (IME) Enter is left alone. */
  function keydown(event: KeyboardEvent): void {
    if (event.key !== "Enter" || event.isComposing) return;
    if (event.shiftKey) {
      shiftNewline = true;
      return;
    }
    event.preventDefault();
    submit();
  }

  /** Some Android keyboards insert the newline without a usable keydown: send when one appears at the end. */
  function input(): void {
    if (shiftNewline) {
      shiftNewline = false;
      return;
    }
    if (text.value.endsWith("\n")) {
      text.value = text.value.slice(0, -1);
      submit();
    }
  }

  return { text, submit, keydown, input };
}
