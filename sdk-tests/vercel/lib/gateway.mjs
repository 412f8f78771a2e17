// Starts `keyway fakes` and a real `keyway serve` in front of them (as sdk-tests/node does),
// so this suite runs on its own (`npm test`, or `node --test test/*.test.mjs`).
// Uses target/debug/keyway, or $KEYWAY_BIN (scripts/test-sdks exports it).

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const BIN = process.env.KEYWAY_BIN || join(ROOT, "target/debug/keyway");
const hex = (n) => randomBytes(n).toString("hex");

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

function firstLine(proc) {
  return new Promise((ok, fail) => {
    const rl = createInterface({ input: proc.stdout });
    rl.once("line", (l) => ok(l));
    proc.once("exit", (code) => fail(new Error(`keyway fakes exited with ${code}`)));
  });
}

async function waitHealth(url, proc, log) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`keyway exited with ${proc.exitCode}:\n${readFileSync(log, "utf8").slice(-4000)}`);
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`keyway did not answer ${url}:\n${readFileSync(log, "utf8").slice(-4000)}`);
}

/** `sk-...AbCd`, as the fakes' call logs write a key. */
export const hint = (raw) => `${raw.slice(0, 3)}...${raw.slice(-4)}`;

export async function startGateway() {
  const tmp = mkdtempSync(join(tmpdir(), "keyway-vercel-"));
  const procs = [];
  const fakesProc = spawn(BIN, ["fakes"], { cwd: tmp, stdio: ["ignore", "pipe", openSync(join(tmp, "fakes.log"), "w")] });
  procs.push(fakesProc);
  const stop = async () => {
    for (const p of procs.reverse()) {
      if (p.exitCode === null) {
        p.kill("SIGTERM");
        await new Promise((r) => {
          const t = setTimeout(() => { p.kill("SIGKILL"); r(); }, 10_000);
          p.once("exit", () => { clearTimeout(t); r(); });
        });
      }
    }
  };
  try {
    const fakes = JSON.parse(await firstLine(fakesProc));
    const systemKeys = { openai: `sk-system-${hex(12)}`, anthropic: `sk-ant-system-${hex(12)}` };
    writeFileSync(
      join(tmp, "keyway.toml"),
      '[[system_credentials]]\nprovider = "openai"\nkey = "env:KW_SDK_OPENAI_KEY"\n\n' +
        '[[system_credentials]]\nprovider = "anthropic"\nkey = "env:KW_SDK_ANTHROPIC_KEY"\n',
    );
    const mgmtKey = `kw-mgmt-vercel-${hex(16)}`;
    const port = await freePort();
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("KEYWAY_")));
    Object.assign(env, {
      KEYWAY_DATA_DIR: join(tmp, "data"),
      KEYWAY_LISTEN: `127.0.0.1:${port}`,
      KEYWAY_BOOTSTRAP_MANAGEMENT_KEY: mgmtKey,
      KW_SDK_OPENAI_KEY: systemKeys.openai,
      KW_SDK_ANTHROPIC_KEY: systemKeys.anthropic,
      KEYWAY_LOG: "info,sqlx=warn",
    });
    for (const [slug, url] of Object.entries(fakes.base_urls)) {
      env[`KEYWAY_PROVIDERS__${slug.toUpperCase().replaceAll("-", "_")}__BASE_URL`] = url;
    }
    const log = join(tmp, "keyway.log");
    const serve = spawn(BIN, ["serve", "--config", join(tmp, "keyway.toml")], { cwd: tmp, env, stdio: ["ignore", openSync(log, "w"), openSync(log, "a")] });
    procs.push(serve);
    const baseUrl = `http://127.0.0.1:${port}`;
    await waitHealth(`${baseUrl}/health`, serve, log);

    const api = async (method, path, body, key = mgmtKey) => {
      const r = await fetch(`${baseUrl}/api/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const json = await r.json();
      if (r.status >= 400) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
      return json;
    };
    return {
      baseUrl,
      mgmtKey,
      fakes,
      systemKeys,
      stop,
      api,
      async newWorkspace() {
        const ws = (await api("POST", "/workspaces", { name: `vercel-${hex(4)}` })).data.id;
        const key = (await api("POST", "/keys", { name: "vercel", workspace_id: ws })).key;
        return { id: ws, key };
      },
      async calls(fake) {
        return (await fetch(`${fakes[fake]}/__fake/calls`)).json();
      },
      async resetFakes() {
        for (const name of ["openai", "anthropic", "bedrock", "azure", "gemini"]) {
          if (fakes[name]) await fetch(`${fakes[name]}/__fake/reset`, { method: "POST" });
        }
      },
      async setFault(fake, fault, extra = {}) {
        const body = { fault, ...extra };
        const r = await fetch(`${fakes[fake]}/__fake/fault`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
        if (r.status >= 400) throw new Error(`fault: ${r.status} ${await r.text()}`);
      },
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
