import { describe, expect, it } from "vitest";
import { describeUserAgent, formatAge, formatCost, formatTokens, permissionInputText, sessionTitle, statusLabel } from "./format";

describe("usage formatting", () => {
  it("shortens token counts", () => {
    expect(formatTokens(0)).toBe("0");
    expect(formatTokens(null)).toBe("0");
    expect(formatTokens(999)).toBe("999");
    expect(formatTokens(1000)).toBe("1k");
    expect(formatTokens(2340)).toBe("2.3k");
    expect(formatTokens(123_456)).toBe("123k");
    expect(formatTokens(999_950)).toBe("1M");
    expect(formatTokens(4_200_000)).toBe("4.2M");
    expect(formatTokens(1_500_000_000)).toBe("1.5B");
  });

  it("shows costs in dollars with cents, and small costs with two significant digits", () => {
    expect(formatCost(0)).toBe("$0.00");
    expect(formatCost(undefined)).toBe("$0.00");
    expect(formatCost(0.0123)).toBe("$0.012");
    expect(formatCost(0.005)).toBe("$0.005");
    expect(formatCost(0.00123)).toBe("$0.0012");
    expect(formatCost(0.5)).toBe("$0.50");
    expect(formatCost(12.345)).toBe("$12.35");
    expect(formatCost(1234.5)).toBe("$1,234.50");
  });

  it("says how long ago", () => {
    const now = Date.parse("2026-12-04T12:00:00Z");
    expect(formatAge(null, now)).toBe("never");
    expect(formatAge("2026-12-04T11:59:50Z", now)).toBe("just now");
    expect(formatAge("2026-12-04T11:55:00Z", now)).toBe("5 min ago");
    expect(formatAge("2026-12-04T09:00:00Z", now)).toBe("3 h ago");
    expect(formatAge("2026-12-02T12:00:00Z", now)).toBe("2 d ago");
    expect(formatAge("2026-10-01T12:00:00Z", now)).toBe("2026-10-01");
  });

  it("labels states and shows tool input as text", () => {
    expect(statusLabel("waiting_permission")).toBe("waiting for approval");
    expect(statusLabel("some_new_state")).toBe("some new state");
    expect(permissionInputText({ command: "rm -rf build", description: "clean" })).toBe("rm -rf build");
    expect(permissionInputText({ file_path: "/etc/passwd" })).toBe("/etc/passwd");
    expect(permissionInputText({ file_path: "/a", content: "x" })).toBe('{\n  "file_path": "/a",\n  "content": "x"\n}');
    expect(permissionInputText({})).toBe("");
  });
});

describe("names for people", () => {
  it("names a browser and its system", () => {
    const chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";
    expect(describeUserAgent(chrome)).toBe("Chrome on Linux");
    const iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Version/18.1 Mobile/15E148 Safari/604.1";
    expect(describeUserAgent(iphone)).toBe("Safari on iOS");
    expect(describeUserAgent("Mozilla/5.0 (Windows NT 10.0; rv:133.0) Gecko/20100101 Firefox/133.0")).toBe("Firefox on Windows");
    expect(describeUserAgent(null)).toBe("Unknown browser");
    expect(describeUserAgent("something-else/1.0")).toBe("something-else/1.0");
  });

  it("shows a session's command as it would be typed", () => {
    expect(sessionTitle({ command: ["bash", "-c", "echo hi; ls"], mode: "interactive", initial_prompt: null })).toBe(
      "bash -c 'echo hi; ls'",
    );
    expect(sessionTitle({ command: ["echo", "it's"], mode: "interactive", initial_prompt: null })).toBe("echo 'it'\\''s'");
    expect(sessionTitle({ command: null, mode: "interactive", initial_prompt: null })).toBe("claude");
    expect(sessionTitle({ command: null, mode: "headless", initial_prompt: "hi" })).toBe("claude (headless)");
  });
});
