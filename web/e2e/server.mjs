// A real Chasqui node for the end-to-end tests: the debug binary on a free loopback port
// with a fresh data directory, plus Debian's Chromium driven by playwright-core.

import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const artifacts = join(here, "artifacts");

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The environment of the node: this one's, without settings that would point it elsewhere. */
function serverEnv() {
  const env = { ...process.env, RUST_LOG: "warn" };
  for (const k of Object.keys(env)) {
    if (k.startsWith("CHASQUI_")) delete env[k];
  }
  return env;
}

/** Starts `chasqui serve`; resolves once it is ready, with what its first start printed. */
export async function startServer() {
  const bin =
    process.env.CHASQUI_BIN ?? join(process.env.CARGO_TARGET_DIR ?? "/var/tmp/chasqui-target", "debug", "chasqui");
  const dir = mkdtempSync(join(tmpdir(), "chasqui-e2e-"));
  writeFileSync(join(dir, "empty.toml"), "");
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(
    bin,
    ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dir, "--config", join(dir, "empty.toml")],
    { env: serverEnv(), stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => process.stderr.write(d));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`chasqui exited (${child.exitCode}): ${out}`);
    if (Date.now() > deadline) throw new Error(`chasqui did not start: ${out}`);
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.ok && out.includes("password:")) break;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const grab = (label) => {
    const m = out.match(new RegExp(`${label}\\s+(\\S+)`));
    if (!m) throw new Error(`no ${label} in: ${out}`);
    return m[1];
  };
  const server = {
    base,
    apiKey: grab("API key:"),
    phoneNumberId: grab("phone_number_id:"),
    email: grab("email:"),
    password: grab("password:"),
    stop: () => new Promise((resolve) => {
      child.once("exit", resolve);
      child.kill("SIGTERM");
    }),
    /** A Platform API call with the project's key. */
    api: async (method, path, body) => {
      const r = await fetch(`${base}${path}`, {
        method,
        headers: { "X-API-Key": server.apiKey, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      const json = text ? JSON.parse(text) : null;
      if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
      return json;
    },
  };
  // The demo workflow would answer every customer; these tests talk to them themselves.
  const flows = await server.api("GET", "/platform/v1/workflows?name_contains=Welcome");
  for (const w of flows.data) {
    const triggers = await server.api("GET", `/platform/v1/workflows/${w.id}/triggers`);
    for (const t of triggers.data) {
      await server.api("PATCH", `/platform/v1/triggers/${t.id}`, { trigger: { active: false } });
    }
    await server.api("DELETE", `/platform/v1/workflows/${w.id}`);
  }
  return server;
}

/** Debian's Chromium, headless, with the flags this machine's closed network needs. */
export async function launchBrowser() {
  mkdirSync(artifacts, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A simulated customer message to the sandbox number. */
export async function customerSays(server, from, name, body) {
  return server.api("POST", `/sandbox/v1/phone_numbers/${server.phoneNumberId}/inbound`, {
    from,
    profile_name: name,
    message: { type: "text", text: { body } },
  });
}
