import { createPinia, setActivePinia } from "pinia";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { Machine } from "@/api/types";

const api = vi.hoisted(() => ({ list: vi.fn(), pairingInfo: vi.fn(), approvePairing: vi.fn() }));
vi.mock("@/api/client", () => ({ machines: api }));

import { normalizeCode, useMachinesStore } from "./machines";

function machine(id: string, name: string, status: Machine["status"]): Machine {
  return {
    id,
    name,
    hostname: `${name}.local`,
    platform: "Linux",
    agent_version: "0.1.0",
    claude_version: "2.1.197",
    last_seen_at: null,
    last_ip: null,
    revoked_at: status === "revoked" ? "2026-12-04T10:00:00Z" : null,
    created_at: "2026-12-01T10:00:00Z",
    status,
    sessions: 0,
    total_tokens: 0,
    total_cost: 0,
  };
}

describe("machines store", () => {
  beforeEach(() => setActivePinia(createPinia()));

  it("lists online machines first, then offline, then revoked, by name", async () => {
    api.list.mockResolvedValue({
      machines: [machine("1", "zeta", "offline"), machine("2", "old", "revoked"), machine("3", "beta", "online"), machine("4", "alpha", "offline")],
    });
    const store = useMachinesStore();
    await store.refresh();
    expect(store.all.map((m) => m.name)).toEqual(["beta", "alpha", "zeta", "old"]);
    expect(store.active.map((m) => m.name)).toEqual(["beta", "alpha", "zeta"]);
    expect(store.online.map((m) => m.name)).toEqual(["beta"]);
    expect(store.name("3")).toBe("beta");
    expect(store.name("unknown-machine-id")).toBe("unknown-");
  });

  it("sends the pairing code in its canonical form however it was typed", async () => {
    api.pairingInfo.mockResolvedValue({ code: "A7K-M2X" });
    api.approvePairing.mockResolvedValue({ machine: machine("9", "new", "offline") });
    const store = useMachinesStore();
    await store.pairingInfo(" a7k m2x ");
    expect(api.pairingInfo).toHaveBeenCalledWith("A7K-M2X");
    await store.approvePairing("a7km2x", "  ");
    expect(api.approvePairing).toHaveBeenCalledWith("A7K-M2X", undefined); // a blank name keeps the requested one
    expect(store.byId["9"]?.name).toBe("new");
  });

  it("normalizes codes", () => {
    expect(normalizeCode("a7k-m2x")).toBe("A7K-M2X");
    expect(normalizeCode("A7KM2X")).toBe("A7K-M2X");
    expect(normalizeCode("abc")).toBe("ABC"); // not a code: left for the relay to refuse with its message
  });
});
