/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The build lands in dist/, which is committed and embedded in the chasqui binary.
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false },
  server: {
    // `npm run dev` against a local `chasqui serve`.
    proxy: {
      "/platform": { target: "http://127.0.0.1:8080", ws: true },
      "/meta": "http://127.0.0.1:8080",
      "/auth": "http://127.0.0.1:8080",
      "/sandbox": "http://127.0.0.1:8080",
    },
  },
  test: { environment: "jsdom", include: ["src/**/*.test.{ts,tsx}"] },
});
