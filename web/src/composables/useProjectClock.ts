// A clock for live countdowns and ages: `now` (ms) ticks every `everyMs` while the component is mounted.
import { onBeforeUnmount, onMounted, ref } from "vue";

export function useProjectClock(everyMs = 1000) {
  const now = ref(Date.now());
  let timer: ReturnType<typeof setInterval> | null = null;
  onMounted(() => {
    timer = setInterval(() => (now.value = Date.now()), everyMs);
  });
  onBeforeUnmount(() => {
    if (timer) clearInterval(timer);
  });
  return now;
}
