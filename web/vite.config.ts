import { fileURLToPath, URL } from "node:url";
import { defineConfig } from "vitest/config";
import vue from "@vitejs/plugin-vue";

// The build is package data of the Python wheel: it lands in claudenest/relay/static, which the relay serves.
export default defineConfig({
  plugins: [vue()],
  resolve: { alias: { "@": fileURLToPath(new URL("./src", import.meta.url)) } },
  build: {
    outDir: "../claudenest/relay/static",
    emptyOutDir: true,
    assetsDir: "assets",
    // No inline scripts or styles, so a strict Content-Security-Policy holds (default-src 'self').
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 600,
  },
  server: { proxy: { "/api": "http://127.0.0.1:8700", "/ws": { target: "ws://127.0.0.1:8700", ws: true } } },
  test: { environment: "happy-dom", include: ["src/**/*.test.ts"] },
});
