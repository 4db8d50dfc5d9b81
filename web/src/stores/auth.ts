import { defineStore } from "pinia";
import { ref } from "vue";
import { auth as api } from "@/api/client";
import { ApiError, onUnauthorized } from "@/api/http";
import type { User } from "@/api/types";

export const useAuthStore = defineStore("auth", () => {
  const user = ref<User | null>(null);
  const checked = ref(false);

  /** True when the browser holds a valid session cookie (asked once, then remembered until a 401). */
  async function ensureSignedIn(): Promise<boolean> {
    if (checked.value) return user.value !== null;
    try {
      user.value = (await api.me()).user;
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) throw error;
      user.value = null;
    }
    checked.value = true;
    return user.value !== null;
  }

  function signedIn(who: User): void {
    user.value = who;
    checked.value = true;
  }

  async function loginWithLink(code: string): Promise<void> {
    signedIn((await api.loginWithLink(code)).user);
  }

  async function loginWithPassword(email: string, password: string): Promise<void> {
    signedIn((await api.loginWithPassword(email, password)).user);
  }

  async function loginWithToken(token: string): Promise<void> {
    signedIn((await api.loginWithToken(token)).user);
  }

  async function logout(): Promise<void> {
    try {
      await api.logout();
    } finally {
      user.value = null;
      checked.value = true;
    }
  }

  onUnauthorized(() => {
    user.value = null;
    checked.value = true;
  });

  return { user, checked, ensureSignedIn, loginWithLink, loginWithPassword, loginWithToken, logout };
});
