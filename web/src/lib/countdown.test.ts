import { describe, expect, it } from "vitest";
import { ageOf, formatAge, formatCountdown, msUntil } from "./countdown";

describe("formatCountdown", () => {
  it("shows seconds, then minutes and seconds, then hours", () => {
    expect(formatCountdown(45_000)).toBe("45s");
    expect(formatCountdown(59_001)).toBe("1:00");
    expect(formatCountdown(4 * 60_000 + 5_000)).toBe("4:05");
    expect(formatCountdown(30 * 60_000)).toBe("30:00");
    expect(formatCountdown(3_723_000)).toBe("1:02:03");
    expect(formatCountdown(24 * 3_600_000)).toBe("24:00:00");
  });

  it("rounds up, so the last second still shows", () => {
    expect(formatCountdown(1)).toBe("1s");
    expect(formatCountdown(999)).toBe("1s");
    expect(formatCountdown(1_001)).toBe("2s");
  });

  it("is expired at zero, past the time, or for a bad timestamp", () => {
    expect(formatCountdown(0)).toBe("expired");
    expect(formatCountdown(-5_000)).toBe("expired");
    expect(formatCountdown(Number.NaN)).toBe("expired");
  });

  it("counts down to an ISO timestamp", () => {
    const now = Date.parse("2026-12-04T12:00:00.000Z");
    expect(formatCountdown(msUntil("2026-12-04T12:30:00.000Z", now))).toBe("30:00");
    expect(formatCountdown(msUntil("2026-12-04T11:59:59.000Z", now))).toBe("expired");
    expect(formatCountdown(msUntil("not a time", now))).toBe("expired");
  });
});

describe("formatAge", () => {
  it("says how long ago", () => {
    expect(formatAge(-200)).toBe("just now");
    expect(formatAge(500)).toBe("just now");
    expect(formatAge(12_400)).toBe("12 s ago");
    expect(formatAge(3 * 60_000 + 1)).toBe("3 min ago");
    expect(formatAge(2 * 3_600_000)).toBe("2 h ago");
    expect(formatAge(4 * 86_400_000)).toBe("4 d ago");
  });

  it("of a timestamp, or never", () => {
    const now = Date.parse("2026-12-04T12:00:10.000Z");
    expect(ageOf("2026-12-04T12:00:00.000Z", now)).toBe("10 s ago");
    expect(ageOf(null, now)).toBe("never");
  });
});
