// Keyway dashboard: the few interactions the server-rendered pages need. Every change is a fetch
// to /ui/api/v1/... (the management API behind the session) with the session's CSRF token;
// after a change the page reloads, so what is shown is always what the server has.
"use strict";
(() => {
  const csrf = document.body.dataset.csrf || "";
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
  const readJson = (id) => {
    const el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch { return null; }
  };

  async function api(method, path, body) {
    const init = { method, headers: { "x-csrf-token": csrf }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let r;
    try {
      r = await fetch("/ui/api/v1" + path, init);
    } catch (e) {
      return { ok: false, status: 0, data: null, message: "The server could not be reached." };
    }
    let data = null;
    try { data = await r.json(); } catch { /* not JSON */ }
    if (r.status === 401) {
      location.href = "/login";
    }
    const message = data && data.error ? data.error.message : r.ok ? "" : `Request failed (${r.status}).`;
    return { ok: r.ok, status: r.status, data, message };
  }

  let toastTimer;
  function toast(msg) {
    const t = $("#toast");
    if (!t) return;
    t.textContent = msg;
    t.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => t.classList.remove("show"), 2600);
  }

  function showError(el, msg) {
    if (!el) return;
    el.textContent = msg || "";
    el.hidden = !msg;
  }

  // ---------- Test key result ----------
  function testBadge(result) {
    const b = document.createElement("button");
    b.type = "button";
    const ok = result.ok === true;
    b.className = "badge " + (ok ? "ok" : "bad");
    b.dataset.action = "show-test";
    const status = result.status ? ` · ${result.status}` : "";
    b.textContent = `${ok ? "OK" : "Failed"}${status} · ${result.latency_ms || 0} ms`;
    b.setAttribute("aria-label", `${b.textContent}: show the request and response`);
    b._result = result;
    return b;
  }

  function showTest(result) {
    const d = $("#test-dialog");
    if (!d) return;
    const ok = result.ok === true;
    $("#test-summary").textContent = ok
      ? `The provider answered ${result.status} in ${result.latency_ms} ms (model ${result.model || "?"}).`
      : `Failed with status ${result.status || "—"} after ${result.latency_ms || 0} ms: ${result.error || "no answer"}`;
    $("#test-request").textContent = result.request || "(no request was sent)";
    const resp = result.response;
    $("#test-response").textContent = resp == null ? "(no response body)" : typeof resp === "string" ? resp : JSON.stringify(resp, null, 2);
    d.showModal();
  }

  async function runTest(slot, path, body) {
    slot.replaceChildren();
    const wait = document.createElement("span");
    wait.className = "badge muted";
    wait.textContent = "Testing…";
    slot.append(wait);
    const r = await api("POST", path, body);
    slot.replaceChildren();
    if (!r.ok) {
      // The request itself was refused (bad shape, ...): show why, as a failed badge.
      slot.append(testBadge({ ok: false, status: r.status, latency_ms: 0, error: r.message, request: null, response: r.data }));
      return;
    }
    slot.append(testBadge(r.data));
  }

  // ---------- Provider key dialog ----------
  const providers = readJson("providers-data") || [];
  const apiKeys = readJson("api-keys-data") || [];
  const dialog = $("#key-dialog");
  const form = $("#key-form");
  let editing = null; // the BYOK object being edited, or null when adding

  function providerInfo(slug) {
    return providers.find((p) => p.slug === slug) || { slug, name: slug, form: "api_key" };
  }

  function addRow(kind, values = {}) {
    const tpl = document.getElementById(kind + "-row");
    const rows = document.getElementById(kind + "-rows");
    const node = tpl.content.firstElementChild.cloneNode(true);
    for (const [k, v] of Object.entries(values)) {
      const input = node.querySelector(`[name="${k}"]`);
      if (input) input.value = v;
    }
    rows.append(node);
    renumberRows(kind);
    return node;
  }

  function renumberRows(kind) {
    const label = kind === "azure" ? "deployment" : "region";
    $$(`#${kind}-rows .row-set`).forEach((row, i) => {
      const rm = row.querySelector("[data-action=remove-row]");
      if (rm) rm.setAttribute("aria-label", `Remove ${label} ${i + 1}`);
      row.querySelectorAll("input").forEach((inp) => inp.setAttribute("data-row", String(i + 1)));
    });
  }

  function setBedrockMode(mode) {
    const iam = mode !== "api_key";
    $("#bedrock-iam").hidden = !iam;
    $("#bedrock-apikey").hidden = iam;
  }

  function renderKeyPicks(selected) {
    const box = $("#key-picks");
    box.replaceChildren();
    if (!apiKeys.length) {
      const p = document.createElement("span");
      p.className = "muted";
      p.innerHTML = 'No API keys yet: create one on the <a href="/api-keys">API keys</a> page.';
      box.append(p);
      return;
    }
    for (const k of apiKeys) {
      const l = document.createElement("label");
      l.className = "check";
      const i = document.createElement("input");
      i.type = "checkbox";
      i.name = "api_key_hash";
      i.value = k.hash;
      i.checked = selected.includes(k.hash);
      const s = document.createElement("span");
      s.textContent = k.name + (k.disabled ? " (disabled)" : "");
      l.append(i, s);
      box.append(l);
    }
  }

  function openKeyDialog(slug, rec) {
    editing = rec || null;
    const info = providerInfo(slug);
    form.reset();
    form.elements.id.value = rec ? rec.id : "";
    form.elements.provider.value = slug;
    $("#key-dialog-title").textContent = rec ? `Edit ${info.name} key` : `Add ${info.name} key`;
    $$(".form-kind", form).forEach((el) => (el.hidden = el.dataset.kind !== info.form));
    $("#azure-rows").replaceChildren();
    $("#bedrock-rows").replaceChildren();
    if (!rec) {
      if (info.form === "azure") addRow("azure");
      if (info.form === "bedrock") addRow("bedrock");
    }
    setBedrockMode("iam");
    $("#keep-hint").hidden = !rec;
    $("#f-key").placeholder = rec ? "unchanged" : "";
    form.elements.name.value = rec ? rec.name : "";
    form.elements.section.value = rec && rec.is_fallback ? "fallback" : "prioritized";
    form.elements.enabled.checked = rec ? !rec.disabled : true;
    form.elements.always_use.checked = rec ? !!rec.is_required : false;
    form.elements.allowed_models.value = rec && rec.allowed_models ? rec.allowed_models.join(", ") : "";
    const hashes = (rec && rec.allowed_api_key_hashes) || [];
    form.elements.assign.value = hashes.length ? "keys" : "org";
    renderKeyPicks(hashes);
    const g = $("#global-wrap");
    if (g) g.hidden = !!rec;
    $("#vertex-check").textContent = "Paste the key file downloaded from Google Cloud (IAM → Service accounts → Keys).";
    $("#f-vertex").removeAttribute("aria-invalid");
    showError($("#key-error"), "");
    $("#dialog-test-result").replaceChildren();
    dialog.showModal();
    form.elements.name.focus();
  }

  // The service-account JSON as the page can check it (the server checks it again).
  function checkVertex(text) {
    let v;
    try { v = JSON.parse(text); } catch { return { error: "This is not valid JSON." }; }
    if (!v || typeof v !== "object" || Array.isArray(v)) return { error: "The service account must be a JSON object." };
    if (v.type !== "service_account") return { error: '"type" must be "service_account".' };
    for (const f of ["project_id", "client_email", "private_key", "token_uri"]) {
      if (typeof v[f] !== "string" || !v[f]) return { error: `"${f}" is missing.` };
    }
    if (!v.client_email.includes("@")) return { error: '"client_email" is not an email address.' };
    if (!v.private_key.includes("-----BEGIN") || !v.private_key.includes("PRIVATE KEY-----")) return { error: '"private_key" is not a PEM private key.' };
    if (!v.token_uri.startsWith("https://")) return { error: '"token_uri" must be an https URL.' };
    return { value: v, summary: `Looks right: ${v.client_email} in project ${v.project_id}.` };
  }

  // The `key` value for the API, or {error}; {} when editing and nothing was entered (keep it).
  function buildSecret() {
    const info = providerInfo(form.elements.provider.value);
    const keep = editing ? {} : null;
    if (info.form === "api_key") {
      const k = form.elements.key.value.trim();
      if (!k) return keep || { error: "Enter the API key." };
      return { key: k };
    }
    if (info.form === "azure") {
      const rows = $$("#azure-rows .row-set").map((r) => Object.fromEntries(["model_slug", "endpoint_url", "api_key", "model_id"].map((n) => [n, r.querySelector(`[name=${n}]`).value.trim()])));
      const filled = rows.filter((r) => Object.values(r).some(Boolean));
      if (!filled.length) return keep || { error: "Add at least one deployment." };
      const bad = filled.findIndex((r) => !Object.values(r).every(Boolean));
      if (bad >= 0) return { error: `Deployment ${bad + 1}: fill in the model slug, endpoint URL, API key and model id.` };
      return { key: filled };
    }
    if (info.form === "bedrock") {
      if (form.elements.bedrock_mode.value === "api_key") {
        const k = form.elements.bedrock_key.value.trim();
        if (!k) return keep || { error: "Enter the Bedrock API key." };
        const region = form.elements.bedrock_region.value.trim();
        return { key: region ? { apiKey: k, region } : k };
      }
      const rows = $$("#bedrock-rows .row-set").map((r) => ({
        region: r.querySelector("[name=region]").value.trim(),
        accessKeyId: r.querySelector("[name=access_key_id]").value.trim(),
        secretAccessKey: r.querySelector("[name=secret_access_key]").value.trim(),
      }));
      const filled = rows.filter((r) => Object.values(r).some(Boolean));
      if (!filled.length) return keep || { error: "Add at least one region with its access key." };
      const bad = filled.findIndex((r) => !Object.values(r).every(Boolean));
      if (bad >= 0) return { error: `Region row ${bad + 1}: fill in the region, access key ID and secret access key.` };
      const regions = filled.map((r) => r.region);
      if (new Set(regions).size !== regions.length) return { error: "Each region may appear only once." };
      return { key: filled };
    }
    if (info.form === "vertex") {
      const text = form.elements.vertex_json.value.trim();
      if (!text) return keep || { error: "Paste the service account JSON." };
      const c = checkVertex(text);
      if (c.error) return { error: "Service account JSON: " + c.error };
      const location = form.elements.vertex_location.value.trim();
      return { key: location ? { ...c.value, location } : c.value };
    }
    return { error: "Unknown provider form." };
  }

  function buildBody() {
    const name = form.elements.name.value.trim();
    if (!name) return { error: "Enter a name for this key." };
    const secret = buildSecret();
    if (secret.error) return secret;
    const models = form.elements.allowed_models.value.split(",").map((s) => s.trim()).filter(Boolean);
    const picked = $$("#key-picks input:checked").map((i) => i.value);
    const assign = form.elements.assign.value;
    if (assign === "keys" && !picked.length) return { error: "Choose at least one API key, or assign the key to the organization." };
    const body = {
      name,
      is_fallback: form.elements.section.value === "fallback",
      is_required: form.elements.always_use.checked,
      disabled: !form.elements.enabled.checked,
      allowed_models: models.length ? models : null,
      allowed_api_key_hashes: assign === "keys" ? picked : null,
    };
    if (!editing) {
      body.provider = form.elements.provider.value;
      if (form.elements.global && form.elements.global.checked) body.workspace_id = null;
    }
    if (secret.key !== undefined) body.key = secret.key;
    return { body };
  }

  async function saveKey(ev) {
    ev.preventDefault();
    const b = buildBody();
    if (b.error) return showError($("#key-error"), b.error);
    const r = editing ? await api("PATCH", `/byok/${encodeURIComponent(editing.id)}`, b.body) : await api("POST", "/byok", b.body);
    if (!r.ok) return showError($("#key-error"), r.message);
    dialog.close();
    toast("Saved");
    location.reload();
  }

  async function testInDialog() {
    const slot = $("#dialog-test-result");
    const secret = buildSecret();
    if (secret.error) return showError($("#key-error"), secret.error);
    showError($("#key-error"), "");
    if (secret.key === undefined && editing) {
      return runTest(slot, `/byok/${encodeURIComponent(editing.id)}/test`);
    }
    await runTest(slot, "/byok/test", { provider: form.elements.provider.value, key: secret.key });
  }

  function rowRecord(row) {
    return readJson("byok-" + row.dataset.id);
  }

  async function patchRow(row, body) {
    const r = await api("PATCH", `/byok/${encodeURIComponent(row.dataset.id)}`, body);
    if (!r.ok) {
      toast(r.message);
      return false;
    }
    return true;
  }

  async function move(row, delta) {
    const list = row.parentElement;
    const rows = [...list.children];
    const i = rows.indexOf(row);
    const j = i + delta;
    if (j < 0 || j >= rows.length) return;
    [rows[i], rows[j]] = [rows[j], rows[i]];
    // Number the section 0..n in its new order; only rows whose number changes are written.
    for (const [n, r] of rows.entries()) {
      if (Number(r.dataset.sort) !== n) {
        if (!(await patchRow(r, { sort_order: n }))) return;
      }
    }
    location.reload();
  }

  // ---------- API keys ----------
  function limitsFrom(formEl, prefix) {
    const num = (n) => {
      const v = formEl.querySelector(`#${prefix}-${n}`).value.trim();
      return v === "" ? null : Number(v);
    };
    const limits = {};
    for (const n of ["requests_per_minute", "tokens_per_minute", "max_concurrent"]) {
      const v = num(n);
      if (v !== null) {
        if (!Number.isInteger(v) || v < 0) return { error: `${n.replaceAll("_", " ")} must be a whole number.` };
        limits[n] = v;
      }
    }
    for (const [n, field] of [["budget_daily_usd", "budget_daily_micros"], ["budget_monthly_usd", "budget_monthly_micros"]]) {
      const v = num(n);
      if (v !== null) {
        if (!Number.isFinite(v) || v < 0) return { error: "Budgets must be amounts in USD." };
        limits[field] = Math.round(v * 1e6);
      }
    }
    return { limits };
  }

  function fillLimits(formEl, prefix, limits) {
    const set = (n, v) => (formEl.querySelector(`#${prefix}-${n}`).value = v == null ? "" : String(v));
    set("requests_per_minute", limits.requests_per_minute);
    set("tokens_per_minute", limits.tokens_per_minute);
    set("max_concurrent", limits.max_concurrent);
    set("budget_daily_usd", limits.budget_daily_micros == null ? null : limits.budget_daily_micros / 1e6);
    set("budget_monthly_usd", limits.budget_monthly_micros == null ? null : limits.budget_monthly_micros / 1e6);
  }

  async function createKey(ev) {
    ev.preventDefault();
    const f = ev.target;
    const err = $("#create-error");
    const name = f.elements.name.value.trim();
    if (!name) return showError(err, "Enter a name for the key.");
    const l = limitsFrom(f, "ck");
    if (l.error) return showError(err, l.error);
    const body = { name };
    if (Object.keys(l.limits).length) body.limits = l.limits;
    if (f.elements.management && f.elements.management.checked) body.management = true;
    const r = await api("POST", "/keys", body);
    if (!r.ok) return showError(err, r.message);
    showError(err, "");
    f.hidden = true;
    const box = $("#new-key");
    $("#new-key-value").value = r.data.key;
    box.hidden = false;
    $("#new-key-value").focus();
    $("#new-key-value").select();
  }

  async function copyKey(btn) {
    const input = $("#new-key-value");
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      input.select();
      document.execCommand("copy");
    }
    btn.textContent = "Copied";
    toast("Key copied to the clipboard");
  }

  async function saveLimits(ev) {
    ev.preventDefault();
    const f = ev.target;
    const l = limitsFrom(f, "lim");
    if (l.error) return showError($("#limits-error"), l.error);
    const r = await api("PATCH", `/keys/${encodeURIComponent(f.elements.hash.value)}`, { limits: l.limits });
    if (!r.ok) return showError($("#limits-error"), r.message);
    location.reload();
  }

  async function topUp(ev) {
    ev.preventDefault();
    const f = ev.target;
    const usd = Number(f.elements.amount.value);
    if (!Number.isFinite(usd) || usd <= 0) return showError($("#topup-error"), "Enter a positive amount in USD.");
    const body = { amount_micros: Math.round(usd * 1e6) };
    const note = f.elements.note.value.trim();
    if (note) body.note = note;
    const r = await api("POST", "/credits", body);
    if (!r.ok) return showError($("#topup-error"), r.message);
    location.reload();
  }

  // ---------- Wiring ----------
  document.addEventListener("click", async (ev) => {
    const el = ev.target.closest("[data-action]");
    if (!el || el.tagName === "INPUT") return;
    const action = el.dataset.action;
    const row = el.closest(".key-row");
    switch (action) {
      case "close":
        el.closest("dialog").close();
        break;
      case "add": {
        const slug = el.dataset.provider || $("#add-provider").value;
        openKeyDialog(slug, null);
        break;
      }
      case "edit": {
        const rec = rowRecord(row);
        if (rec) openKeyDialog(rec.provider, rec);
        break;
      }
      case "add-row":
        addRow(el.dataset.rows).querySelector("input").focus();
        break;
      case "remove-row": {
        const rows = el.closest(".rows");
        el.closest(".row-set").remove();
        renumberRows(rows.id.replace("-rows", ""));
        break;
      }
      case "test-unsaved":
        await testInDialog();
        break;
      case "test-stored":
        await runTest(row.querySelector(".test-result"), `/byok/${encodeURIComponent(row.dataset.id)}/test`);
        break;
      case "show-test":
        showTest(el._result);
        break;
      case "move-up":
        await move(row, -1);
        break;
      case "move-down":
        await move(row, 1);
        break;
      case "delete":
        if (confirm(`Delete the key "${row.dataset.name}"? Requests stop using it at once.`)) {
          const r = await api("DELETE", `/byok/${encodeURIComponent(row.dataset.id)}`);
          if (r.ok) location.reload();
          else toast(r.message);
        }
        break;
      case "copy-key":
        await copyKey(el);
        break;
      case "reload":
        location.reload();
        break;
      case "key-toggle": {
        const tr = el.closest("tr");
        const disabled = el.dataset.disabled !== "true";
        const r = await api("PATCH", `/keys/${encodeURIComponent(tr.dataset.hash)}`, { disabled });
        if (r.ok) location.reload();
        else toast(r.message);
        break;
      }
      case "key-limits": {
        const tr = el.closest("tr");
        const k = readJson("key-" + tr.dataset.hash);
        const f = $("#limits-form");
        f.elements.hash.value = tr.dataset.hash;
        $("#limits-title").textContent = `Limits and budgets: ${tr.dataset.name}`;
        fillLimits(f, "lim", (k && k.limits) || {});
        showError($("#limits-error"), "");
        $("#limits-dialog").showModal();
        break;
      }
      case "key-delete": {
        const tr = el.closest("tr");
        if (confirm(`Delete the API key "${tr.dataset.name}"? Apps using it stop working at once.`)) {
          const r = await api("DELETE", `/keys/${encodeURIComponent(tr.dataset.hash)}`);
          if (r.ok) location.reload();
          else toast(r.message);
        }
        break;
      }
    }
  });

  document.addEventListener("change", async (ev) => {
    const el = ev.target;
    if (el.name === "bedrock_mode") setBedrockMode(el.value);
    if (el.name === "api_key_hash" && el.checked && form) form.elements.assign.value = "keys";
    const action = el.dataset && el.dataset.action;
    if (action === "toggle-enabled" || action === "toggle-always") {
      const row = el.closest(".key-row");
      const body = action === "toggle-enabled" ? { disabled: !el.checked } : { is_required: el.checked };
      el.disabled = true;
      if (await patchRow(row, body)) location.reload();
      else {
        el.checked = !el.checked;
        el.disabled = false;
      }
    }
  });

  const vertex = $("#f-vertex");
  if (vertex) {
    vertex.addEventListener("input", () => {
      const text = vertex.value.trim();
      const out = $("#vertex-check");
      if (!text) {
        out.textContent = "Paste the key file downloaded from Google Cloud (IAM → Service accounts → Keys).";
        vertex.removeAttribute("aria-invalid");
        return;
      }
      const c = checkVertex(text);
      out.textContent = c.error ? "Not valid yet: " + c.error : c.summary;
      if (c.error) vertex.setAttribute("aria-invalid", "true");
      else vertex.removeAttribute("aria-invalid");
    });
  }
  if (form) form.addEventListener("submit", saveKey);
  const ck = $("#create-key-form");
  if (ck) ck.addEventListener("submit", createKey);
  const lf = $("#limits-form");
  if (lf) lf.addEventListener("submit", saveLimits);
  const tf = $("#topup-form");
  if (tf) tf.addEventListener("submit", topUp);
})();
