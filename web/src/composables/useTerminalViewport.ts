// Keep the terminal's prompt above a phone's soft keyboard. Browsers shrink the visual viewport, not the layout
// viewport, when the keyboard opens (Chrome since 108, Safari always): while it is open the terminal view is
// pinned to the visual viewport's box (position fixed, its top and height), and fitting follows.
import { onBeforeUnmount, onMounted, ref, type CSSProperties } from "vue";

/** The keyboard is taken to be open when the visual viewport is this much shorter than the window. */
const KEYBOARD_MIN_PX = 120;

export function useTerminalViewport() {
  const style = ref<CSSProperties>({});
  const keyboardOpen = ref(false);

  function update(): void {
    const vv = window.visualViewport;
    if (!vv) return;
    const open = window.innerHeight - vv.height > KEYBOARD_MIN_PX;
    keyboardOpen.value = open;
    style.value = open
      ? {
          position: "fixed",
          left: `${vv.offsetLeft}px`,
          top: `${vv.offsetTop}px`,
          width: `${vv.width}px`,
          height: `${vv.height}px`,
          zIndex: 30,
        }
      : {};
  }

  onMounted(() => {
    window.visualViewport?.addEventListener("resize", update);
    window.visualViewport?.addEventListener("scroll", update);
    update();
  });
  onBeforeUnmount(() => {
    window.visualViewport?.removeEventListener("resize", update);
    window.visualViewport?.removeEventListener("scroll", update);
  });

  return { style, keyboardOpen };
}
