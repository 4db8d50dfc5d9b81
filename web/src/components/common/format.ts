// How numbers and times from the API are shown: token counts, dollar costs, ages. Pure functions (format.test.ts).

export function formatTokens(count: number | null | undefined): string {
  const n = Math.max(0, Math.round(count ?? 0));
  if (n < 1000) return String(n);
  for (const [size, unit] of [
    [1e9, "B"],
    [1e6, "M"],
    [1e3, "k"],
  ] as const) {
    if (n >= size) {
      const value = n / size;
      const text = value >= 100 ? value.toFixed(0) : value.toFixed(1).replace(/\.0$/, "");
      // 999,950 rounds to "1000k": say "1M" instead.
      if (text === "1000" && unit !== "B") return unit === "k" ? "1M" : "1B";
      return `${text}${unit}`;
    }
  }
  return String(n);
}

export function formatCost(dollars: number | null | undefined): string {
  const value = dollars ?? 0;
  if (value <= 0) return "$0.00";
  if (value < 0.01) return `$${value.toPrecision(2).replace(/0+$/, "")}`;
  if (value < 1) return `$${value.toFixed(3).replace(/0$/, "")}`;
  return `$${value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

/** "just now", "5 min ago", "3 h ago", "2 d ago"; the date itself beyond a week. */
export function formatAge(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return "never";
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return iso;
  const seconds = Math.round((now - then) / 1000);
  if (seconds < 0) return "in the future";
  if (seconds < 45) return "just now";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  const days = Math.round(hours / 24);
  if (days <= 7) return `${days} d ago`;
  return new Date(then).toISOString().slice(0, 10);
}

/** A local date and time for a title attribute. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "";
  const then = Date.parse(iso);
  return Number.isNaN(then) ? iso : new Date(then).toLocaleString();
}

const STATUS_LABELS: Record<string, string> = {
  starting: "starting",
  running: "running",
  idle: "idle",
  waiting_permission: "waiting for approval",
  error: "error",
  exited: "exited",
  online: "online",
  offline: "offline",
  revoked: "revoked",
};

export function statusLabel(status: string): string {
  return STATUS_LABELS[status] ?? status.replace(/_/g, " ");
}

/** A tool input as readable text: a Bash command as is, anything else as indented JSON. */
export function permissionInputText(input: Record<string, unknown> | null | undefined): string {
  if (!input || Object.keys(input).length === 0) return "";
  const keys = Object.keys(input);
  if (keys.length === 1 && typeof input[keys[0]!] === "string") return input[keys[0]!] as string;
  if (typeof input.command === "string" && keys.every((k) => k === "command" || k === "description")) {
    return input.command;
  }
  return JSON.stringify(input, null, 2);
}

/** What a session runs, as a person would type it. */
export function sessionTitle(session: { command: string[] | null; mode: string; initial_prompt: string | null }): string {
  if (session.command && session.command.length > 0) {
    return session.command.map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`)).join(" ");
  }
  return session.mode === "headless" ? "claude (headless)" : "claude";
}

/** "Chrome on Linux" from a User-Agent header; the header itself when it is not recognised. */
export function describeUserAgent(agent: string | null | undefined): string {
  if (!agent) return "Unknown browser";
  const browser =
    [
      [/Edg\//, "Edge"],
      [/OPR\/|Opera/, "Opera"],
      [/Firefox\//, "Firefox"],
      [/HeadlessChrome\//, "Headless Chrome"],
      [/Chrome\/|CriOS\//, "Chrome"],
      [/Safari\//, "Safari"],
      [/curl\//, "curl"],
      [/python-httpx|python-requests|aiohttp/, "Python"],
    ].find(([pattern]) => (pattern as RegExp).test(agent))?.[1] ?? null;
  const system =
    [
      [/Android/, "Android"],
      [/iPhone|iPad|iPod/, "iOS"],
      [/Mac OS X|Macintosh/, "macOS"],
      [/Windows/, "Windows"],
      [/CrOS/, "ChromeOS"],
      [/Linux/, "Linux"],
    ].find(([pattern]) => (pattern as RegExp).test(agent))?.[1] ?? null;
  if (!browser) return agent.slice(0, 80);
  return system ? `${browser} on ${system}` : (browser as string);
}
