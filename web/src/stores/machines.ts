// The user's machines: online state (re-read every 15 s while a page shows it; the watch socket carries session
// events only), rename, revoke, pairing approval and each machine's discovery.
import { defineStore } from "pinia";
import { computed, onBeforeUnmount, onMounted, ref } from "vue";
import { machines as api } from "@/api/client";
import type { Discovery, Machine, PairingInfo } from "@/api/types";

export const useMachinesStore = defineStore("machines", () => {
  const byId = ref<Record<string, Machine>>({});
  const loaded = ref(false);
  const error = ref<string | null>(null);
  const discoveries = ref<Record<string, Discovery | null>>({});

  const all = computed(() =>
    Object.values(byId.value).sort((a, b) => {
      const rank = (m: Machine) => (m.status === "online" ? 0 : m.status === "offline" ? 1 : 2);
      return rank(a) - rank(b) || a.name.localeCompare(b.name);
    }),
  );
  const active = computed(() => all.value.filter((m) => m.status !== "revoked"));
  const online = computed(() => all.value.filter((m) => m.status === "online"));

  async function refresh(): Promise<void> {
    try {
      const { machines } = await api.list();
      byId.value = Object.fromEntries(machines.map((m) => [m.id, m]));
      loaded.value = true;
      error.value = null;
    } catch (e) {
      error.value = e instanceof Error ? e.message : String(e);
      throw e;
    }
  }

  async function fetchOne(id: string): Promise<Machine> {
    const { machine } = await api.get(id);
    byId.value[machine.id] = machine;
    return machine;
  }

  function name(id: string | null | undefined): string {
    if (!id) return "";
    return byId.value[id]?.name ?? id.slice(0, 8);
  }

  async function rename(id: string, newName: string): Promise<Machine> {
    const { machine } = await api.rename(id, newName.trim());
    byId.value[machine.id] = machine;
    return machine;
  }

  async function revoke(id: string): Promise<Machine> {
    const { machine } = await api.revoke(id);
    byId.value[machine.id] = machine;
    return machine;
  }

  async function loadDiscovery(id: string): Promise<Discovery | null> {
    const { discovery } = await api.discovery(id);
    discoveries.value[id] = discovery;
    return discovery;
  }

  function pairingInfo(code: string): Promise<PairingInfo> {
    return api.pairingInfo(normalizeCode(code));
  }

  async function approvePairing(code: string, machineName?: string): Promise<Machine> {
    const { machine } = await api.approvePairing(normalizeCode(code), machineName?.trim() || undefined);
    byId.value[machine.id] = machine;
    return machine;
  }

  return {
    byId,
    all,
    active,
    online,
    loaded,
    error,
    discoveries,
    refresh,
    fetchOne,
    name,
    rename,
    revoke,
    loadDiscovery,
    pairingInfo,
    approvePairing,
  };
});

/** "a7k m2x", "A7KM2X" and "A7K-M2X" are the same code. */
export function normalizeCode(raw: string): string {
  const compact = raw.toUpperCase().replace(/[^A-Z0-9]/g, "");
  return compact.length === 6 ? `${compact.slice(0, 3)}-${compact.slice(3)}` : raw.trim().toUpperCase();
}

const MACHINES_REFRESH_MS = 15_000;
let followers = 0;
let followTimer: ReturnType<typeof setInterval> | null = null;

/** The machines list, re-read every 15 s while a component that calls this is mounted (and when the tab is shown). */
export function useLiveMachines(): ReturnType<typeof useMachinesStore> {
  const store = useMachinesStore();
  const tick = (): void => void store.refresh().catch(() => undefined);
  const onVisible = (): void => {
    if (document.visibilityState === "visible") tick();
  };
  onMounted(() => {
    tick();
    followers += 1;
    if (followers === 1) followTimer = setInterval(tick, MACHINES_REFRESH_MS);
    document.addEventListener("visibilitychange", onVisible);
  });
  onBeforeUnmount(() => {
    document.removeEventListener("visibilitychange", onVisible);
    followers -= 1;
    if (followers === 0 && followTimer) {
      clearInterval(followTimer);
      followTimer = null;
    }
  });
  return store;
}
