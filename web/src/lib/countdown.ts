// Time left and time since, for the locks' live expiry countdown and the instances' heartbeat age. Pure.

/** Milliseconds from `now` until the ISO timestamp `iso` (negative once it is past; NaN for a bad timestamp). */
export function msUntil(iso: string, now: number): number {
  return Date.parse(iso) - now;
}

/** A countdown: "45s", "4:05", "1:02:03", "expired" at zero or below (rounded up, so it never shows 0:00 early). */
export function formatCountdown(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return "expired";
  const total = Math.ceil(ms / 1000);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const two = (n: number) => String(n).padStart(2, "0");
  if (hours > 0) return `${hours}:${two(minutes)}:${two(seconds)}`;
  if (minutes > 0) return `${minutes}:${two(seconds)}`;
  return `${seconds}s`;
}

/** How long ago: "just now" under a second (or a clock a little ahead), "12 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms)) return "never";
  if (ms < 1000) return "just now";
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} d ago`;
}

/** Age of an ISO timestamp at `now`, or "never" for null. */
export function ageOf(iso: string | null, now: number): string {
  return iso ? formatAge(now - Date.parse(iso)) : "never";
}
