// The official TypeScript OpenRouter SDK (@openrouter/sdk) against Keyway's /api/v1, unchanged:
// every response below is parsed and validated by the SDK's own zod schemas (a missing
// required key throws ResponseValidationError).

import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { OpenRouter } from "@openrouter/sdk";
import * as errors from "@openrouter/sdk/models/errors";
import { hint, startGateway } from "../lib/gateway.mjs";

const MODEL = "openai/gpt-4o-mini";
const MSG = [{ role: "user", content: "hello there" }];
const rawKey = () => `sk-test-${randomBytes(12).toString("hex")}`;

let gw;
// The one-line change: Keyway's base URL and a Keyway key. Retries off so the tests see
// Keyway's status as is (the SDK retries 5xx by default).
const sdk = (apiKey = gw.mgmtKey, extra = {}) =>
  new OpenRouter({ apiKey, serverURL: `${gw.baseUrl}/api/v1`, retryConfig: { strategy: "none" }, ...extra });

async function rejectsWith(promise, cls, check) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e?.constructor?.name}: ${e?.message}`);
    if (check) check(e);
    return e;
  }
  assert.fail(`expected ${cls.name}, got success`);
}

async function waitGeneration(c, id) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await c.generations.getGeneration({ id });
    } catch (e) {
      if (!(e instanceof errors.NotFoundResponseError) || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

before(async () => {
  gw = await startGateway();
});
after(async () => {
  await gw?.stop();
});
beforeEach(async () => {
  await gw.resetFakes();
});

describe("byok", () => {
  test("create / list / get / update with and without key / delete", async () => {
    const ws = await gw.newWorkspace();
    const c = sdk();
    const raw = rawKey();
    const created = await c.byok.create({
      createBYOKKeyRequest: { provider: "openai", key: raw, name: "node openai", workspaceId: ws.id, allowedModels: [MODEL], isRequired: true, declaredZdr: true },
    });
    const k = created.data;
    assert.equal(k.provider, "openai");
    assert.equal(k.workspaceId, ws.id);
    assert.equal(k.isRequired, true);
    assert.equal(k.isByokOnly, false);
    assert.equal(k.declaredZdr, true);
    assert.deepEqual(k.allowedModels, [MODEL]);
    assert.equal(k.allowedUserIds, null);
    assert.ok(k.label.endsWith(raw.slice(-4)) && !JSON.stringify(created).includes(raw));

    const page = await c.byok.list({ workspaceId: ws.id });
    assert.equal(page.result.totalCount, 1);
    assert.deepEqual(page.result.data.map((x) => x.id), [k.id]);

    const got = await c.byok.get({ id: k.id });
    assert.equal(got.data.id, k.id);

    const upd = await c.byok.update({ id: k.id, updateBYOKKeyRequest: { name: "renamed", isRequired: false, allowedModels: null } });
    assert.equal(upd.data.name, "renamed");
    assert.equal(upd.data.isRequired, false);
    assert.equal(upd.data.allowedModels, null);
    assert.equal(upd.data.label, k.label);

    const raw2 = rawKey();
    const upd2 = await c.byok.update({ id: k.id, updateBYOKKeyRequest: { key: raw2 } });
    assert.equal(upd2.data.id, k.id);
    assert.ok(upd2.data.label.endsWith(raw2.slice(-4)));
    await sdk(ws.key).chat.send({ chatRequest: { model: MODEL, messages: MSG } });
    assert.equal((await gw.calls("openai")).at(-1).key_hint, hint(raw2));

    const del = await c.byok.delete({ id: k.id });
    assert.equal(del.deleted, true);
    await rejectsWith(c.byok.get({ id: k.id }), errors.NotFoundResponseError, (e) => assert.equal(e.error.code, 404));
  });

  test("a global key (workspaceId null) is read, listed and used in every workspace", async () => {
    // The SDK's create can't send `workspace_id: null` (it leaves an unset field out), so the
    // key is created over HTTP by the admin key; every call after that is the SDK's.
    const [a, b] = [await gw.newWorkspace(), await gw.newWorkspace()];
    const raw = rawKey();
    const gid = (await gw.api("POST", "/byok", { provider: "openai", key: raw, workspace_id: null })).data.id;
    const c = sdk();
    try {
      assert.equal((await c.byok.get({ id: gid })).data.workspaceId, null);
      for (const w of [a, b]) {
        const page = await c.byok.list({ workspaceId: w.id });
        assert.deepEqual(page.result.data.map((x) => [x.id, x.workspaceId]), [[gid, null]]);
        await sdk(w.key).chat.send({ chatRequest: { model: MODEL, messages: MSG } });
      }
      assert.deepEqual((await gw.calls("openai")).map((x) => x.key_hint), [hint(raw), hint(raw)]);
      const upd = await c.byok.update({ id: gid, updateBYOKKeyRequest: { name: "global renamed" } });
      assert.equal(upd.data.workspaceId, null);
    } finally {
      // One gateway serves the whole file: a global key must not outlive this test.
      assert.equal((await c.byok.delete({ id: gid })).deleted, true);
    }
  });

  test("errors are typed from the integer code", async () => {
    await rejectsWith(
      sdk().byok.create({ createBYOKKeyRequest: { provider: "openai", key: rawKey(), isByokOnly: true, isFallback: true } }),
      errors.BadRequestResponseError,
      (e) => assert.equal(e.error.code, 400),
    );
    await rejectsWith(sdk("kw-not-a-key").byok.get({ id: "nope" }), errors.UnauthorizedResponseError);
  });
});

describe("api keys", () => {
  test("create / list / get / update / delete", async () => {
    const ws = await gw.newWorkspace();
    const c = sdk();
    const created = await c.apiKeys.create({ requestBody: { name: "node key", limit: 12.5, limitReset: "monthly", workspaceId: ws.id } });
    assert.ok(created.key.startsWith("kw-"));
    assert.equal(created.data.limit, 12.5);
    assert.equal(created.data.limitReset, "monthly");
    const hash = created.data.hash;

    const list = await c.apiKeys.list({ workspaceId: ws.id });
    assert.ok(list.data.some((k) => k.hash === hash));

    const got = await c.apiKeys.get({ hash });
    assert.equal(got.data.hash, hash);

    const upd = await c.apiKeys.update({ hash, requestBody: { name: "renamed", disabled: true } });
    assert.equal(upd.data.name, "renamed");
    assert.equal(upd.data.disabled, true);

    const del = await c.apiKeys.delete({ hash });
    assert.equal(del.deleted, true);
    await rejectsWith(c.apiKeys.get({ hash }), errors.NotFoundResponseError);
  });

  test("current key", async () => {
    const ws = await gw.newWorkspace();
    const me = await sdk(ws.key).apiKeys.getCurrentKeyMetadata();
    assert.equal(me.data.isManagementKey, false);
    assert.equal(me.data.workspaceId, ws.id);
    const mgmt = await sdk().apiKeys.getCurrentKeyMetadata();
    assert.equal(mgmt.data.isManagementKey, true);
  });
});

describe("inference and reads", () => {
  test("chat send, plain", async () => {
    const ws = await gw.newWorkspace();
    const res = await sdk(ws.key).chat.send({ chatRequest: { model: MODEL, messages: MSG } });
    assert.equal(res.choices[0].message.content, "Echo: hello there");
    assert.equal(res.choices[0].finishReason, "stop");
    assert.equal(res.model, MODEL);
    assert.ok(res.usage.totalTokens > 0);
  });

  test("chat send, streaming", async () => {
    const ws = await gw.newWorkspace();
    const stream = await sdk(ws.key).chat.send({ chatRequest: { model: MODEL, messages: [{ role: "user", content: "stream me" }], stream: true } });
    let text = "";
    let finish = null;
    const ids = new Set();
    for await (const chunk of stream) {
      ids.add(chunk.id);
      if (chunk.choices.length) {
        text += chunk.choices[0].delta.content ?? "";
        finish = chunk.choices[0].finishReason ?? finish;
      }
    }
    assert.equal(text, "Echo: stream me");
    assert.equal(finish, "stop");
    assert.equal(ids.size, 1);
  });

  test("models list", async () => {
    const page = await sdk().models.list();
    const ids = page.result.data.map((m) => m.id);
    assert.ok(ids.includes(MODEL));
    assert.equal(page.result.totalCount, ids.length);
    const m = page.result.data.find((x) => x.id === MODEL);
    assert.ok(Math.abs(Number(m.pricing.prompt) - 0.15e-6) < 1e-12);
  });

  test("providers list", async () => {
    const res = await sdk().providers.list();
    assert.ok(res.data.some((p) => p.slug === "anthropic"));
  });

  test("credits", async () => {
    const res = await sdk().credits.getCredits();
    assert.equal(typeof res.data.totalCredits, "number");
    assert.equal(typeof res.data.totalUsage, "number");
  });

  test("generation by id, with attribution headers", async () => {
    const ws = await gw.newWorkspace();
    const c = sdk(ws.key, { httpReferer: "https://node-test.example", appTitle: "Keyway node test" });
    const res = await c.chat.send({ chatRequest: { model: MODEL, messages: MSG } });
    const gen = await waitGeneration(sdk(), res.id);
    assert.equal(gen.data.id, res.id);
    assert.equal(gen.data.model, MODEL);
    assert.equal(gen.data.httpReferer, "https://node-test.example");
  });
});

describe("routing options", () => {
  test("models fallback says which model served", async () => {
    const ws = await gw.newWorkspace();
    await gw.setFault("openai", "server_error");
    const res = await sdk(ws.key).chat.send({ chatRequest: { model: MODEL, models: [MODEL, "anthropic/claude-haiku-4.5"], messages: MSG } });
    assert.equal(res.model, "anthropic/claude-haiku-4.5");
  });

  test("max_price with nothing left is a 402 naming the price", async () => {
    const ws = await gw.newWorkspace();
    await rejectsWith(
      sdk(ws.key).chat.send({ chatRequest: { model: "openai/gpt-4o", messages: MSG, provider: { maxPrice: { prompt: "1", completion: "2" } } } }),
      errors.PaymentRequiredResponseError,
      (e) => assert.match(e.error.message, /\$2\.50\/M/),
    );
    assert.deepEqual(await gw.calls("openai"), []);
  });
});
