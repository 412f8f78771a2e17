// The Vercel AI SDK (`ai` + `@ai-sdk/gateway`, pinned in package-lock.json) against Keyway's
// /v1/ai, unchanged: `createGateway({ baseURL: `${keyway}/v1/ai`, apiKey })` is the one change.
// Every answer below went through the SDK's own parsing (zod schemas, stream-part handling,
// typed gateway errors).

import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { embed, generateObject, generateText, Output, RetryError, streamText, tool } from "ai";
import {
  createGateway,
  GatewayAuthenticationError,
  GatewayError,
  GatewayInternalServerError,
  GatewayInvalidRequestError,
  GatewayModelNotFoundError,
  GatewayNotFoundError,
  GatewayRateLimitError,
} from "@ai-sdk/gateway";
import { z } from "zod";
import { hint, startGateway } from "../lib/gateway.mjs";

let gw;
let ws;
const provider = (apiKey = ws.key) => createGateway({ baseURL: `${gw.baseUrl}/v1/ai`, apiKey });

before(async () => {
  gw = await startGateway();
  ws = await gw.newWorkspace();
});
after(async () => {
  await gw?.stop();
});
beforeEach(async () => {
  await gw.resetFakes();
});

/** The error a call threw, unwrapped from the SDK's RetryError when it retried. */
async function failure(promise) {
  try {
    await promise;
  } catch (e) {
    return RetryError.isInstance(e) ? e.lastError : e;
  }
  assert.fail("expected the call to fail");
}

async function generationInfo(gateway, id) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await gateway.getGenerationInfo({ id });
    } catch (e) {
      if (!GatewayNotFoundError.isInstance(e) && !GatewayModelNotFoundError.isInstance(e)) throw e;
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe("language model", () => {
  test("generateText: text, usage, finish reason, provider metadata", async () => {
    const gateway = provider();
    const r = await generateText({ model: gateway("openai/gpt-4o-mini"), system: "be brief", prompt: "hello from vercel", maxRetries: 0 });
    assert.match(r.text, /hello from vercel/);
    assert.equal(r.finishReason, "stop");
    assert.ok(r.usage.inputTokens > 0 && r.usage.outputTokens > 0, JSON.stringify(r.usage));
    assert.equal(r.usage.totalTokens, r.usage.inputTokens + r.usage.outputTokens);
    const meta = r.providerMetadata.gateway;
    assert.equal(meta.routing.resolvedProvider, "openai");
    assert.equal(meta.routing.credentialType, "system");
    assert.ok(Number(meta.cost) > 0, `cost ${meta.cost}`);
    assert.match(meta.generationId, /^gen-/);
    const calls = await gw.calls("openai");
    assert.equal(calls.length, 1);
    assert.equal(calls[0].key_hint, hint(gw.systemKeys.openai));
    assert.deepEqual(calls[0].body.messages[0], { role: "system", content: "be brief" });
  });

  test("streamText with tools: the tool is called with streamed input and executed", async () => {
    const gateway = provider();
    const seen = [];
    const r = streamText({
      model: gateway("openai/gpt-4o-mini"),
      prompt: "what is the weather in Paris?",
      maxRetries: 0,
      tools: {
        weather: tool({
          description: "the weather in a city",
          inputSchema: z.object({ city: z.string() }),
          execute: async ({ city }) => {
            seen.push(city);
            return { city, celsius: 21 };
          },
        }),
      },
    });
    const types = new Set();
    for await (const part of r.fullStream) types.add(part.type);
    assert.ok(types.has("tool-input-start") && types.has("tool-input-delta") && types.has("tool-call"), [...types].join(","));
    assert.ok(types.has("tool-result"), [...types].join(","));
    assert.deepEqual(seen, ["Paris"]);
    const [call] = await r.toolCalls;
    assert.equal(call.toolName, "weather");
    assert.deepEqual(call.input, { city: "Paris" });
    assert.equal(await r.finishReason, "tool-calls");
    assert.ok((await r.usage).inputTokens > 0);
    const body = (await gw.calls("openai"))[0].body;
    assert.equal(body.tools[0].function.name, "weather");
    assert.equal(body.stream, true);
  });

  test("streamText: text arrives as deltas", async () => {
    const r = streamText({ model: provider()("openai/gpt-4o-mini"), prompt: "stream this back", maxRetries: 0 });
    const pieces = [];
    for await (const t of r.textStream) pieces.push(t);
    assert.ok(pieces.length >= 1);
    assert.match(pieces.join(""), /stream this back/);
    assert.equal(await r.finishReason, "stop");
    assert.equal((await r.providerMetadata).keyway.provider, "openai");
  });

  test("generateObject and Output.object: structured output matches the schema", async () => {
    const schema = z.object({ animal: z.string(), legs: z.number() });
    const { object } = await generateObject({ model: provider()("openai/gpt-4o-mini"), schema, prompt: "an animal", maxRetries: 0 });
    assert.equal(typeof object.animal, "string");
    assert.equal(typeof object.legs, "number");
    const sent = (await gw.calls("openai"))[0].body;
    assert.equal(sent.response_format.type, "json_schema");
    const r = await generateText({ model: provider()("openai/gpt-4o-mini"), output: Output.object({ schema }), prompt: "another animal", maxRetries: 0 });
    assert.equal(typeof r.output.legs, "number");
  });

  test("reasoning: Anthropic thinking comes back as reasoning, streamed too", async () => {
    const opts = {
      model: provider()("anthropic/claude-sonnet-4.5"),
      prompt: "think about it",
      maxOutputTokens: 2048,
      providerOptions: { anthropic: { thinking: { type: "enabled", budgetTokens: 1024 } } },
      maxRetries: 0,
    };
    const r = await generateText(opts);
    assert.ok(r.reasoningText && r.reasoningText.length > 0, JSON.stringify(r.content));
    assert.match(r.text, /think about it/);
    assert.equal((await gw.calls("anthropic"))[0].body.thinking.budget_tokens, 1024);
    const s = streamText(opts);
    const kinds = new Set();
    for await (const p of s.fullStream) kinds.add(p.type);
    assert.ok(kinds.has("reasoning-delta") && kinds.has("text-delta"), [...kinds].join(","));
    assert.ok((await s.reasoningText).length > 0);
  });

  test("an image part reaches the upstream as an image", async () => {
    const png = Buffer.from("89504e470d0a1a0a", "hex");
    await generateText({
      model: provider()("openai/gpt-4o-mini"),
      maxRetries: 0,
      messages: [{ role: "user", content: [{ type: "text", text: "what is this" }, { type: "image", image: png, mediaType: "image/png" }] }],
    });
    const part = (await gw.calls("openai"))[0].body.messages[0].content[1];
    assert.equal(part.type, "image_url");
    assert.equal(part.image_url.url, `data:image/png;base64,${png.toString("base64")}`);
  });
});

describe("BYOK", () => {
  test("the Vercel BYOK page's sample: the request-scoped key serves, stored and system keys see no call", async () => {
    const stored = `sk-ant-stored-${randomBytes(8).toString("hex")}`;
    await gw.api("POST", "/byok", { provider: "anthropic", key: stored, workspace_id: ws.id });
    const apiKey = `sk-ant-request-${randomBytes(8).toString("hex")}`;
    const r = await generateText({
      model: provider()("anthropic/claude-sonnet-4"),
      prompt: "Hello from a request-scoped key",
      providerOptions: { gateway: { byok: { anthropic: [{ apiKey }] } } },
      maxRetries: 0,
    });
    assert.match(r.text, /request-scoped key/);
    assert.equal(r.providerMetadata.gateway.routing.credentialType, "byok");
    assert.equal(r.providerMetadata.keyway.credentialId, "request");
    const hints = (await gw.calls("anthropic")).map((c) => c.key_hint);
    assert.deepEqual(hints, [hint(apiKey)]);
    assert.ok(!hints.includes(hint(stored)) && !hints.includes(hint(gw.systemKeys.anthropic)));
    assert.deepEqual(await gw.calls("openai"), []);
    console.log(`# BYOK sample: text=${JSON.stringify(r.text)} provider=${r.providerMetadata.keyway.provider} credential=${r.providerMetadata.keyway.credentialId} cost=${r.providerMetadata.gateway.cost} upstream-key=${hints[0]}`);
  });

  test("gateway.order and only pick the provider", async () => {
    const r = await generateText({
      model: provider()("anthropic/claude-sonnet-4.5"),
      prompt: "order please",
      providerOptions: { gateway: { only: ["anthropic"], order: ["anthropic"] } },
      maxRetries: 0,
    });
    assert.equal(r.providerMetadata.keyway.provider, "anthropic");
    assert.equal((await gw.calls("anthropic")).length, 1);
  });
});

describe("embeddings and metadata", () => {
  test("embed", async () => {
    const r = await embed({ model: provider().embeddingModel("openai/text-embedding-3-small"), value: "sunny day", maxRetries: 0 });
    assert.ok(Array.isArray(r.embedding) && r.embedding.length > 0);
    assert.ok(r.usage.tokens > 0);
    assert.equal((await gw.calls("openai"))[0].body.input[0], "sunny day");
  });

  test("getAvailableModels lists what the key can use, with prices", async () => {
    const { models } = await provider().getAvailableModels();
    const mini = models.find((m) => m.id === "openai/gpt-4o-mini");
    assert.ok(mini, JSON.stringify(models.map((m) => m.id)));
    assert.equal(mini.modelType, "language");
    assert.equal(mini.specification.modelId, "openai/gpt-4o-mini");
    assert.ok(Number(mini.pricing.input) > 0 && Number(mini.pricing.output) > 0);
    assert.equal(models.find((m) => m.id === "openai/text-embedding-3-small").modelType, "embedding");
  });

  test("getCredits and getGenerationInfo", async () => {
    const gateway = provider();
    const credits = await gateway.getCredits();
    assert.equal(typeof credits.balance, "string");
    assert.equal(typeof credits.totalUsed, "string");
    const r = await generateText({ model: gateway("openai/gpt-4o-mini"), prompt: "count me", maxRetries: 0 });
    const info = await generationInfo(gateway, r.providerMetadata.gateway.generationId);
    assert.equal(info.id, r.providerMetadata.gateway.generationId);
    assert.equal(info.providerName, "OpenAI");
    assert.equal(info.isByok, false);
    assert.equal(info.promptTokens, r.usage.inputTokens);
    assert.equal(info.completionTokens, r.usage.outputTokens);
    assert.equal(info.finishReason, "stop");
    assert.ok(info.totalCost > 0);
  });
});

describe("typed errors", () => {
  test("authentication", async () => {
    // generateText re-wraps the typed error in a plain Error of the same name (with its own hint).
    const e = await failure(generateText({ model: provider("kw-not-a-real-key")("openai/gpt-4o-mini"), prompt: "x", maxRetries: 0 }));
    assert.equal(e.name, "GatewayAuthenticationError", e?.message);
    for (const call of [
      () => provider("kw-not-a-real-key").getAvailableModels(),
      () => provider("kw-not-a-real-key")("openai/gpt-4o-mini").doGenerate({ prompt: [{ role: "user", content: [{ type: "text", text: "x" }] }] }),
    ]) {
      const typed = await failure(call());
      assert.ok(GatewayAuthenticationError.isInstance(typed), `${typed?.name}: ${typed?.message}`);
      assert.equal(typed.type, "authentication_error");
      assert.equal(typed.statusCode, 401);
    }
  });

  test("invalid request", async () => {
    const e = await failure(
      generateText({ model: provider()("openai/gpt-4o-mini"), prompt: "x", providerOptions: { gateway: { order: "openai" } }, maxRetries: 0 }),
    );
    assert.ok(GatewayInvalidRequestError.isInstance(e), `${e?.name}: ${e?.message}`);
    assert.equal(e.type, "invalid_request_error");
    assert.equal(e.statusCode, 400);
    assert.match(e.message, /providerOptions\.gateway\.order/);
  });

  test("model not found", async () => {
    const e = await failure(generateText({ model: provider()("no-such-model"), prompt: "x", maxRetries: 0 }));
    assert.ok(GatewayModelNotFoundError.isInstance(e), `${e?.name}: ${e?.message}`);
    assert.equal(e.type, "model_not_found");
    assert.equal(e.modelId, "no-such-model");
  });

  test("rate limit", async () => {
    await gw.setFault("openai", "rate_limit", { retry_after_secs: 3 });
    const e = await failure(generateText({ model: provider()("openai/gpt-4o-mini"), prompt: "x", maxRetries: 0 }));
    assert.ok(GatewayRateLimitError.isInstance(e), `${e?.name}: ${e?.message}`);
    assert.equal(e.type, "rate_limit_exceeded");
    assert.equal(e.statusCode, 429);
    assert.match(e.generationId, /^gen-/);
    assert.equal(e.cause?.responseHeaders?.["retry-after"], "3");
  });

  test("internal (upstream failure)", async () => {
    await gw.setFault("openai", "server_error");
    const e = await failure(generateText({ model: provider()("openai/gpt-4o-mini"), prompt: "x", maxRetries: 0 }));
    assert.ok(GatewayInternalServerError.isInstance(e), `${e?.name}: ${e?.message}`);
    assert.equal(e.type, "internal_server_error");
    assert.ok(e.statusCode >= 500);
    assert.ok(GatewayError.isInstance(e));
  });
});
