// The dashboard in Debian's Chromium (playwright-core) against a real `keyway serve` in front of
// the fakes. The tests run in order and share one signed-in browser, as a newcomer would click
// through: sign in, add keys of every shape, test them, scope and order them, create an API key,
// send a request that falls back and read it back. Every response the browser receives is kept
// and searched for the provider secrets at the end; axe-core checks every page.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startGateway } from "../../node/lib/gateway.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const SHOTS = join(HERE, "..", "screenshots");
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const hex = (n) => randomBytes(n).toString("hex");

// Provider secrets typed into the pages: none may come back in any response.
const SECRETS = {
  openaiGood: `sk-browser-good-${hex(12)}`,
  openaiBad: `sk-browser-bad-${hex(12)}`,
  bedrock1: `bedrock-secret-one-${hex(12)}`,
  bedrock2: `bedrock-secret-two-${hex(12)}`,
  azure1: `azure-key-one-${hex(12)}`,
  azure2: `azure-key-two-${hex(12)}`,
};
const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const VERTEX_PEM = privateKey.export({ type: "pkcs8", format: "pem" });
const VERTEX_PEM_BODY = VERTEX_PEM.split("\n")[5];

let gw, ctx, page, userDir;
const bodies = []; // [url, text] of every response the browser got

async function axeCheck(name) {
  await page.addScriptTag({ content: AXE });
  const res = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = res.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
    [],
    `axe on ${name}`,
  );
}

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

function row(name) {
  return page.locator(".key-row", { has: page.locator(".key-name", { hasText: new RegExp(`^${name}$`) }) });
}

async function openAdd(provider) {
  await page.selectOption("#add-provider", provider);
  await page.click("button[data-action=add]:not([data-provider])");
  await page.locator("#key-dialog[open]").waitFor();
}

async function saveDialog() {
  await Promise.all([page.waitForEvent("load"), page.click("#key-form button[type=submit]")]);
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  gw = await startGateway();
  userDir = mkdtempSync(join(tmpdir(), "keyway-chromium-"));
  ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 900 },
    // axe is injected as an inline script; the pages' CSP would (rightly) refuse it.
    bypassCSP: true,
  });
  await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: gw.baseUrl });
  ctx.on("response", async (r) => {
    try {
      bodies.push([r.url(), await r.text()]);
    } catch {
      // redirects and aborted loads have no body
    }
  });
  page = ctx.pages()[0] || (await ctx.newPage());
  page.setDefaultTimeout(15_000);
});

after(async () => {
  await ctx?.close();
  await gw?.stop();
  if (userDir) rmSync(userDir, { recursive: true, force: true });
});

describe("dashboard", () => {
  test("a wrong key is refused with a clear message and no session", async () => {
    const resp = await page.goto(gw.baseUrl + "/");
    assert.equal(new URL(page.url()).pathname, "/login");
    assert.equal(resp.status(), 200);
    await axeCheck("sign in");
    await shot("01-sign-in");
    await page.fill("#key", "kw-mgmt-this-is-not-a-real-key-000000");
    const [r] = await Promise.all([page.waitForResponse((r) => r.url().endsWith("/login") && r.request().method() === "POST"), page.click("button[type=submit]")]);
    assert.equal(r.status(), 401);
    await assert.doesNotReject(page.getByRole("alert").filter({ hasText: "not accepted" }).waitFor());
    assert.equal((await ctx.cookies()).filter((c) => c.name === "kw_session").length, 0);
    await axeCheck("sign in error");
    await shot("02-sign-in-wrong-key");
  });

  test("signing in lands on the empty state with a strict, HttpOnly session cookie", async () => {
    await page.fill("#key", gw.mgmtKey);
    await Promise.all([page.waitForURL(gw.baseUrl + "/"), page.click("button[type=submit]")]);
    await page.getByRole("heading", { name: "Provider keys" }).waitFor();
    await page.getByRole("heading", { name: "Welcome to Keyway" }).waitFor();
    const c = (await ctx.cookies()).find((c) => c.name === "kw_session");
    assert.ok(c, "session cookie set");
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, "Strict");
    assert.ok(!(await page.content()).includes(gw.mgmtKey), "the management key is not in the page");
    await axeCheck("empty provider keys");
    await shot("03-provider-keys-empty");
  });

  test("keyboard: open the add dialog with Enter, the name field has focus, Escape closes it", async () => {
    await page.focus("#add-provider");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.textContent), "Add key");
    await page.keyboard.press("Enter");
    await page.locator("#key-dialog[open]").waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), "f-name");
    await page.keyboard.press("Escape");
    await page.locator("#key-dialog:not([open])").waitFor({ state: "attached" });
  });

  test("add an OpenAI key, tested in the dialog before saving", async () => {
    await openAdd("openai");
    await page.getByLabel("Name", { exact: true }).fill("Primary OpenAI");
    await page.getByLabel("API key", { exact: true }).fill(SECRETS.openaiGood);
    await page.click("#key-form button[data-action=test-unsaved]");
    const badge = page.locator("#dialog-test-result button.badge");
    await badge.waitFor();
    assert.match(await badge.textContent(), /^OK · 200 · \d+ ms$/);
    await axeCheck("add dialog");
    await shot("04-add-openai-dialog-tested");
    await badge.click();
    await page.locator("#test-dialog[open]").waitFor();
    const req = await page.locator("#test-request").textContent();
    assert.match(req, /^curl /);
    assert.match(req, /chat\/completions/);
    assert.ok(!req.includes(SECRETS.openaiGood), "the curl command masks the key");
    assert.match(await page.locator("#test-response").textContent(), /"choices"/);
    await shot("05-test-result-modal");
    await page.locator("#test-dialog button[data-action=close]").last().click();
    await saveDialog();
    await row("Primary OpenAI").waitFor();
    assert.match(await row("Primary OpenAI").locator(".key-label").textContent(), /^sk-\.\.\.[0-9a-f]{4}$/);
  });

  test("a failing key: the dialog's test shows the 401 and the upstream's answer", async () => {
    await gw.setFault("openai", "unauthorized", SECRETS.openaiBad);
    await openAdd("openai");
    await page.getByLabel("Name", { exact: true }).fill("Backup OpenAI");
    await page.getByLabel("API key", { exact: true }).fill(SECRETS.openaiBad);
    await page.click("#key-form button[data-action=test-unsaved]");
    const badge = page.locator("#dialog-test-result button.badge.bad");
    await badge.waitFor();
    assert.match(await badge.textContent(), /^Failed · 401 · \d+ ms$/);
    await badge.click();
    assert.match(await page.locator("#test-summary").textContent(), /Failed with status 401/);
    assert.match(await page.locator("#test-response").textContent(), /Incorrect API key provided/);
    assert.ok(!(await page.locator("#test-request").textContent()).includes(SECRETS.openaiBad));
    await page.locator("#test-dialog button[data-action=close]").last().click();
    await saveDialog();
    await row("Backup OpenAI").waitFor();
  });

  test("test stored keys from their rows: ok and failed", async () => {
    await row("Primary OpenAI").getByRole("button", { name: "Test key Primary OpenAI" }).click();
    const ok = row("Primary OpenAI").locator(".test-result button.badge.ok");
    await ok.waitFor();
    assert.match(await ok.textContent(), /^OK · 200/);
    await row("Backup OpenAI").getByRole("button", { name: "Test key Backup OpenAI" }).click();
    const bad = row("Backup OpenAI").locator(".test-result button.badge.bad");
    await bad.waitFor();
    assert.match(await bad.textContent(), /^Failed · 401/);
    await bad.click();
    await page.locator("#test-dialog[open]").waitFor();
    assert.match(await page.locator("#test-request").textContent(), /^curl /);
    await page.locator("#test-dialog button[data-action=close]").last().click();
  });

  test("reorder: move the backup key up", async () => {
    const names = () => page.locator("[aria-labelledby=openai-prio] .key-name").allTextContents();
    assert.deepEqual(await names(), ["Primary OpenAI", "Backup OpenAI"]);
    await Promise.all([page.waitForEvent("load"), page.getByRole("button", { name: "Move Backup OpenAI up" }).click()]);
    assert.deepEqual(await names(), ["Backup OpenAI", "Primary OpenAI"]);
    assert.equal(await page.getByRole("button", { name: "Move Backup OpenAI up" }).isDisabled(), true);
  });

  test("add a Bedrock key with two regions", async () => {
    await openAdd("amazon-bedrock");
    await page.getByLabel("Name", { exact: true }).fill("Bedrock IAM");
    await page.click("button[data-action=add-row][data-rows=bedrock]");
    const rows = page.locator("#bedrock-rows .row-set");
    assert.equal(await rows.count(), 2);
    const fill = async (i, region, id, secret) => {
      await rows.nth(i).getByLabel("Region", { exact: true }).fill(region);
      await rows.nth(i).getByLabel("Access key ID").fill(id);
      await rows.nth(i).getByLabel("Secret access key").fill(secret);
    };
    await fill(0, "us-east-1", gw.fakes.bedrock_iam.accessKeyId, SECRETS.bedrock1);
    await fill(1, "eu-west-1", "AKIAKEYWAYFAKE000002", SECRETS.bedrock2);
    await shot("06-add-bedrock-dialog");
    await saveDialog();
    await row("Bedrock IAM").waitFor();
    const r = await gw.api("GET", "/byok?provider=amazon-bedrock");
    assert.equal(r.data.length, 1);
  });

  test("add an Azure key with two deployments (one row added, one removed)", async () => {
    await openAdd("azure");
    await page.getByLabel("Name", { exact: true }).fill("Azure deployments");
    await page.click("button[data-action=add-row][data-rows=azure]");
    await page.click("button[data-action=add-row][data-rows=azure]");
    const rows = page.locator("#azure-rows .row-set");
    assert.equal(await rows.count(), 3);
    await page.getByRole("button", { name: "Remove deployment 3" }).click();
    assert.equal(await rows.count(), 2);
    const fill = async (i, slug, dep, key) => {
      await rows.nth(i).getByLabel("Model slug").fill(slug);
      await rows.nth(i).getByLabel("Endpoint URL").fill(`https://my-resource.openai.azure.com/openai/deployments/${dep}/chat/completions?api-version=2024-10-21`);
      await rows.nth(i).getByLabel("API key").fill(key);
      await rows.nth(i).getByLabel("Model id").fill(dep);
    };
    await fill(0, "openai/gpt-4o", "gpt4o-prod", SECRETS.azure1);
    // A half-filled row is refused in the page with a clear message.
    await rows.nth(1).getByLabel("Model slug").fill("openai/gpt-4o-mini");
    await page.click("#key-form button[type=submit]");
    assert.match(await page.locator("#key-error").textContent(), /Deployment 2: fill in/);
    await fill(1, "openai/gpt-4o-mini", "gpt4o-mini-prod", SECRETS.azure2);
    await shot("07-add-azure-dialog");
    await saveDialog();
    await row("Azure deployments").waitFor();
  });

  test("add a Vertex service account, checked in the page and on the server", async () => {
    await openAdd("google-vertex");
    await page.getByLabel("Name", { exact: true }).fill("Vertex SA");
    const ta = page.getByLabel("Service account JSON");
    await ta.fill('{"type": "service_account", "project_id": "p"');
    assert.match(await page.locator("#vertex-check").textContent(), /Not valid yet: This is not valid JSON/);
    // Valid JSON the server still refuses (a PEM that isn't one): its message is shown.
    const sa = { type: "service_account", project_id: "keyway-test", private_key_id: "abc", private_key: VERTEX_PEM,
      client_email: "kw@keyway-test.iam.gserviceaccount.com", token_uri: "https://oauth2.googleapis.com/token" };
    await ta.fill(JSON.stringify({ ...sa, private_key: "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n" }));
    await page.click("#key-form button[type=submit]");
    await page.locator("#key-error").filter({ hasText: /private_key/ }).waitFor();
    await ta.fill(JSON.stringify(sa, null, 2));
    assert.match(await page.locator("#vertex-check").textContent(), /Looks right: kw@keyway-test/);
    // An admin may share a key with every workspace; it is marked as such.
    await page.getByLabel("Global (every workspace)").check();
    await shot("08-add-vertex-dialog");
    await saveDialog();
    await row("Vertex SA").locator(".badge.global", { hasText: "Global" }).waitFor();
    assert.equal((await gw.api("GET", "/byok?provider=google-vertex")).data[0].workspace_id, null);
  });

  test("create an API key: shown once, copied", async () => {
    await page.goto(gw.baseUrl + "/api-keys");
    await axeCheck("API keys");
    await page.getByLabel("Name", { exact: true }).fill("Browser app");
    await page.click("summary");
    await page.getByLabel("Requests / minute").first().fill("600");
    await page.getByLabel("Monthly budget (USD)").first().fill("25");
    await page.getByRole("button", { name: "Create key" }).click();
    const value = page.locator("#new-key-value");
    await value.waitFor();
    const raw = await value.inputValue();
    assert.match(raw, /^kw-/);
    await page.getByRole("button", { name: "Copy", exact: true }).click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), raw);
    await shot("09-api-key-created");
    await Promise.all([page.waitForEvent("load"), page.getByRole("button", { name: "Done" }).click()]);
    const tr = page.locator("tr", { hasText: "Browser app" });
    await tr.waitFor();
    assert.match(await tr.textContent(), /600 req\/min/);
    assert.match(await tr.textContent(), /\$25\.00\/month/);
    assert.ok(!(await page.content()).includes(raw), "the raw key is not shown again");
    await axeCheck("API keys with a key");
    await shot("10-api-keys");
    gw.appKey = raw;
  });

  test("assign a provider key to one API key: the badges change", async () => {
    await page.goto(gw.baseUrl + "/");
    const assigned = () => row("Primary OpenAI").locator(".assignment .badge").allTextContents();
    assert.deepEqual(await assigned(), ["Organization (all API keys)"]);
    await row("Primary OpenAI").getByRole("button", { name: "Edit Primary OpenAI" }).click();
    await page.locator("#key-dialog[open]").waitFor();
    assert.equal(await page.getByLabel("API key", { exact: true }).inputValue(), "", "the secret field starts empty");
    await page.getByLabel("Browser app").check();
    assert.equal(await page.getByLabel("Only these API keys:").isChecked(), true);
    await saveDialog();
    assert.deepEqual(await assigned(), ["Browser app"]);
    // The stored secret was kept: the key still tests ok.
    await row("Primary OpenAI").getByRole("button", { name: "Test key Primary OpenAI" }).click();
    await row("Primary OpenAI").locator(".test-result button.badge.ok").waitFor();
  });

  test("toggle always-use and enabled", async () => {
    const box = row("Bedrock IAM").getByLabel("Always use this key");
    assert.equal(await box.isChecked(), false);
    await Promise.all([page.waitForEvent("load"), box.check()]);
    assert.equal(await row("Bedrock IAM").getByLabel("Always use this key").isChecked(), true);
    await row("Bedrock IAM").locator(".badge.pin", { hasText: "Always used" }).waitFor();
    const enabled = row("Azure deployments").getByLabel("Enabled");
    await Promise.all([page.waitForEvent("load"), enabled.uncheck()]);
    await row("Azure deployments").locator(".badge", { hasText: "Disabled" }).waitFor();
    const r = await gw.api("GET", "/byok?provider=amazon-bedrock");
    assert.equal(r.data[0].is_required, true);
    await axeCheck("provider keys");
    await shot("11-provider-keys");
  });

  test("delete a key", async () => {
    page.once("dialog", (d) => d.accept());
    await Promise.all([page.waitForEvent("load"), page.getByRole("button", { name: "Delete Vertex SA" }).click()]);
    assert.equal(await row("Vertex SA").count(), 0);
    assert.equal((await gw.api("GET", "/byok?provider=google-vertex")).data.length, 0);
  });

  test("a request that fell back shows both attempts in order", async () => {
    const r = await fetch(gw.baseUrl + "/v1/chat/completions", {
      method: "POST",
      headers: { authorization: `Bearer ${gw.appKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(r.status, 200, await r.clone().text());
    const genId = r.headers.get("x-keyway-generation-id");
    for (let i = 0; i < 50; i++) {
      const g = await fetch(`${gw.baseUrl}/api/v1/generation?id=${genId}`, { headers: { authorization: `Bearer ${gw.mgmtKey}` } });
      if (g.status === 200) break;
      await new Promise((ok) => setTimeout(ok, 100));
    }
    await page.goto(gw.baseUrl + "/requests?fallback=1");
    const link = page.locator(`a[href="/requests/${genId}"]`);
    await link.waitFor();
    await axeCheck("requests");
    await shot("12-requests");
    await link.click();
    await page.getByRole("heading", { name: /Attempts, in order/ }).waitFor();
    const attempts = page.locator("ol.attempts > li");
    assert.equal(await attempts.count(), 2);
    const first = await attempts.nth(0).textContent();
    const second = await attempts.nth(1).textContent();
    assert.match(first, /Attempt 1/);
    assert.match(first, /Backup OpenAI/);
    assert.match(first, /401/);
    assert.match(first, /refused the key/);
    assert.match(second, /Attempt 2/);
    assert.match(second, /Primary OpenAI/);
    assert.match(second, /200/);
    await axeCheck("request");
    await shot("13-request-detail");

    // The health board saw both attempts: the refused key's last error, the other's last success.
    await page.goto(gw.baseUrl + "/");
    const backup = await row("Backup OpenAI").locator(".health").textContent();
    // The class of the failure and the status the upstream answered with (the fake's 401).
    assert.match(backup, /Last error: \d{4}-\d\d-\d\d [\d:]+ UTC \(auth, HTTP 401\)/);
    assert.match(backup, /Cooling down|Unhealthy/);
    const primary = await row("Primary OpenAI").locator(".health").textContent();
    assert.match(primary, /Last success: \d{4}-/);
    await shot("15-provider-keys-after-traffic");
  });

  test("usage shows the request in its charts and tables", async () => {
    await page.goto(gw.baseUrl + "/usage?days=7");
    await page.locator("#chart-requests canvas").waitFor();
    assert.equal(await page.locator(".plot canvas").count(), 4);
    const tile = await page.locator(".tile", { hasText: "Requests" }).locator(".tile-value").textContent();
    assert.ok(Number(tile.replace(/,/g, "")) >= 1, `requests tile: ${tile}`);
    await page.locator("#t-cred ~ .table-wrap td", { hasText: "Primary OpenAI" }).waitFor();
    await axeCheck("usage");
    await shot("14-usage");
  });

  test("sign out ends the session", async () => {
    await Promise.all([page.waitForURL(/\/login$/), page.getByRole("button", { name: "Sign out" }).click()]);
    await page.goto(gw.baseUrl + "/api-keys");
    assert.equal(new URL(page.url()).pathname, "/login");
    const r = await page.evaluate(async () => (await fetch("/ui/api/v1/byok")).status);
    assert.equal(r, 401);
  });

  test("no provider secret appears in any response the browser received", () => {
    assert.ok(bodies.length > 30, `recorded ${bodies.length} responses`);
    const secrets = [...Object.values(SECRETS), VERTEX_PEM_BODY];
    for (const [url, text] of bodies) {
      for (const s of secrets) {
        assert.ok(!text.includes(s), `a secret came back in ${url}`);
      }
    }
  });
});
