// Dragging task cards between the board's columns with pointer events, so a mouse, a pen and a finger all work
// (HTML5 drag and drop does not fire on phones). A mouse drags the card itself once it moved a few pixels (a
// click still opens the card); touch and pen drag from the card's grip, whose `touch-action: none` keeps the
// page from scrolling instead. Columns are found under the pointer by their `data-column` attribute; near the top
// or bottom edge of the window the page scrolls, so a phone's stacked columns are all reachable.
import { onBeforeUnmount, ref } from "vue";
import type { TaskStatus } from "@/api/types";

const START_DISTANCE = 6; // px a mouse moves before a press becomes a drag
const EDGE_TOP = 64; // px from the window's top edge where dragging scrolls up
const EDGE_BOTTOM = 110; // and from its bottom (a phone's tab bar covers the last 72 px)
const SCROLL_STEP = 12;

export interface DragState {
  taskId: string;
  from: TaskStatus;
  /** The column under the pointer, or null outside every column. */
  over: TaskStatus | null;
  x: number;
  y: number;
  /** Where the pointer grabbed the card, so the floating card does not jump. */
  offsetX: number;
  offsetY: number;
  width: number;
}

export function useTaskBoard(onDrop: (taskId: string, from: TaskStatus, to: TaskStatus) => void) {
  const drag = ref<DragState | null>(null);
  /** Set right after a drag ends, so the click that follows a mouse drag does not open the card. */
  let suppressClick = false;
  let pending: { event: PointerEvent; taskId: string; from: TaskStatus; card: HTMLElement } | null = null;
  let scrollTimer: ReturnType<typeof setInterval> | null = null;
  let scrollBy = 0;

  function columnAt(x: number, y: number): TaskStatus | null {
    const element = document.elementFromPoint(x, y);
    const column = element instanceof Element ? element.closest<HTMLElement>("[data-column]") : null;
    return (column?.dataset.column as TaskStatus | undefined) ?? null;
  }

  function begin(event: PointerEvent, taskId: string, from: TaskStatus, card: HTMLElement): void {
    const box = card.getBoundingClientRect();
    drag.value = {
      taskId,
      from,
      over: from,
      x: event.clientX,
      y: event.clientY,
      offsetX: event.clientX - box.left,
      offsetY: event.clientY - box.top,
      width: box.width,
    };
    window.addEventListener("pointermove", onMove, { passive: false });
  }

  /** pointerdown on a card (mouse) or on its grip (any pointer). */
  function press(event: PointerEvent, taskId: string, from: TaskStatus, fromGrip = false): void {
    if (event.button !== 0 || drag.value) return;
    const card = (event.currentTarget as HTMLElement).closest<HTMLElement>("[data-task-card]");
    if (!card) return;
    if (!fromGrip && event.pointerType !== "mouse") return; // a finger on the card scrolls the page
    event.preventDefault();
    window.addEventListener("pointerup", onUp);
    window.addEventListener("pointercancel", onCancel);
    if (fromGrip) begin(event, taskId, from, card);
    else {
      pending = { event, taskId, from, card };
      window.addEventListener("pointermove", onMove, { passive: false });
    }
  }

  function onMove(event: PointerEvent): void {
    if (pending && !drag.value) {
      const dx = event.clientX - pending.event.clientX;
      const dy = event.clientY - pending.event.clientY;
      if (Math.hypot(dx, dy) < START_DISTANCE) return;
      begin(pending.event, pending.taskId, pending.from, pending.card);
      pending = null;
    }
    const state = drag.value;
    if (!state) return;
    event.preventDefault();
    state.x = event.clientX;
    state.y = event.clientY;
    state.over = columnAt(event.clientX, event.clientY);
    edgeScroll(event.clientY);
  }

  function edgeScroll(y: number): void {
    scrollBy = y < EDGE_TOP ? -SCROLL_STEP : y > window.innerHeight - EDGE_BOTTOM ? SCROLL_STEP : 0;
    if (scrollBy !== 0 && scrollTimer === null) {
      scrollTimer = setInterval(() => {
        if (scrollBy === 0 || !drag.value) return stopScroll();
        window.scrollBy(0, scrollBy);
        drag.value.over = columnAt(drag.value.x, drag.value.y);
      }, 16);
    } else if (scrollBy === 0) stopScroll();
  }

  function stopScroll(): void {
    if (scrollTimer !== null) clearInterval(scrollTimer);
    scrollTimer = null;
  }

  function finish(): DragState | null {
    window.removeEventListener("pointermove", onMove);
    window.removeEventListener("pointerup", onUp);
    window.removeEventListener("pointercancel", onCancel);
    stopScroll();
    pending = null;
    const state = drag.value;
    drag.value = null;
    return state;
  }

  function onUp(event: PointerEvent): void {
    const state = finish();
    if (!state) return;
    suppressClick = true;
    setTimeout(() => (suppressClick = false), 0);
    const to = columnAt(event.clientX, event.clientY);
    if (to && to !== state.from) onDrop(state.taskId, state.from, to);
  }

  function onCancel(): void {
    finish();
  }

  /** True when a click on a card is the tail of a drag and should do nothing. */
  function clickIsDrag(): boolean {
    return suppressClick;
  }

  onBeforeUnmount(() => {
    finish();
  });

  return { drag, press, clickIsDrag };
}
