"""Shared fixtures for the official-SDK tests: a real `keyway serve` in front of the fakes.

Run through `scripts/test-sdks` (it makes the venv and builds nothing: it uses
`target/debug/keyway`, or `$KEYWAY_BIN`). One gateway and one set of fakes per session.

Fixtures
--------
``gw`` (session) -- the running gateway, a :class:`Gateway`:
    gw.base_url             "http://127.0.0.1:PORT" (no trailing slash). OpenAI SDK:
                            ``OpenAI(base_url=gw.base_url + "/v1", api_key=...)``; Anthropic SDK:
                            ``Anthropic(base_url=gw.base_url, api_key=...)``; OpenRouter SDKs:
                            ``gw.base_url + "/api/v1"``.
    gw.mgmt_key             the bootstrap management key (``kw-mgmt-...``, admin).
    gw.inference_key        an inference key in the default workspace (routes to the system
                            credentials only while that workspace has no BYOK keys: tests that add
                            BYOK keys use ``ws`` instead).
    gw.api(method, path, json=None, key=None, params=None) -> httpx.Response
                            a call to ``/api/v1{path}`` with the management key (or ``key``).
    gw.new_inference_key(name="test", workspace_id=None, limits=None) -> str   the raw ``kw-...`` key.
    gw.new_workspace(name=None) -> str                                      its id.
    gw.add_byok(provider="openai", key=None, workspace_id=None, **fields) -> dict
                            creates a BYOK credential; returns the API object plus ``raw_key``
                            (default key: a random ``sk-test-...`` that the fakes accept).
    gw.fakes                {"openai": url, "anthropic": url, "bedrock": url, "azure": url,
                            "gemini": url, "base_urls": {slug: keyway base url}, "bedrock_iam": {...}}
    gw.set_fault(fake, fault, key=None, once=False, retry_after_secs=None, ms=None)
                            fault: "rate_limit" | "server_error" | "unauthorized" | "bad_request" |
                            "slow" | "cut_stream" | "error_event" | "invalid_json" | None (clear);
                            ``key``: only calls made with that raw provider key; ``once``: next call only.
    gw.calls(fake) -> list  what the fake saw: [{method, path, key_hint, body}] (key_hint masked).
    gw.reset_fakes()        clears faults and call logs on every fake.
    gw.system_keys          {"openai": raw, "anthropic": raw}: the system credentials' keys.
                            (The gateway runs with ``timeouts.first_byte_ms = FIRST_BYTE_MS``.)
    gw.metrics() -> str     ``GET /metrics`` text.
    gw.log_text() -> str    the server's stderr so far (to check no secret is logged).

``ws`` (function) -- a fresh workspace with its own inference key, so BYOK keys added in one
test never route another test's requests:
    ws.id, ws.key (raw ``kw-...``), ws.add_byok(provider="openai", key=None, **fields) -> dict,
    ws.new_key(name="extra") -> str, ws.openai() -> openai.OpenAI client on ``/v1`` with ws.key.

``reset`` (autouse, function) -- clears fake faults and call logs before each test.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("KEYWAY_BIN", ROOT / "target" / "debug" / "keyway"))
# The gateway's upstream first-byte timeout in these tests (milliseconds).
FIRST_BYTE_MS = 3000
FAKE_NAMES = ("openai", "anthropic", "bedrock", "azure", "gemini")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"keyway exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"keyway did not answer {url} within {timeout}s:\n{log.read_text()[-4000:]}")


class Gateway:
    def __init__(self, base_url: str, mgmt_key: str, fakes: dict, system_keys: dict, log: Path):
        self.base_url = base_url
        self.mgmt_key = mgmt_key
        self.fakes = fakes
        self.system_keys = system_keys
        self._log = log
        self._http = httpx.Client(timeout=30.0)
        self.inference_key = self.new_inference_key("sdk-default")

    # -- management API ------------------------------------------------------------------
    def api(self, method: str, path: str, json=None, key: str | None = None, params=None) -> httpx.Response:
        return self._http.request(
            method,
            f"{self.base_url}/api/v1{path}",
            json=json,
            params=params,
            headers={"Authorization": f"Bearer {key or self.mgmt_key}"},
        )

    def _ok(self, r: httpx.Response) -> dict:
        if r.status_code >= 400:
            raise AssertionError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")
        return r.json()

    def new_workspace(self, name: str | None = None) -> str:
        name = name or f"sdk-{secrets.token_hex(4)}"
        return self._ok(self.api("POST", "/workspaces", {"name": name}))["data"]["id"]

    def new_inference_key(self, name: str = "test", workspace_id: str | None = None, limits: dict | None = None) -> str:
        body: dict = {"name": name}
        if workspace_id:
            body["workspace_id"] = workspace_id
        if limits:
            body["limits"] = limits
        return self._ok(self.api("POST", "/keys", body))["key"]

    def add_byok(self, provider: str = "openai", key=None, workspace_id: str | None = None, **fields) -> dict:
        raw = key if key is not None else f"sk-test-{secrets.token_hex(12)}"
        body = {"provider": provider, "name": fields.pop("name", f"{provider}-{secrets.token_hex(3)}"), "key": raw, **fields}
        if workspace_id:
            body["workspace_id"] = workspace_id
        obj = self._ok(self.api("POST", "/byok", body))
        obj = obj.get("data", obj)
        obj["raw_key"] = raw
        return obj

    # -- fakes --------------------------------------------------------------------------
    def _fake(self, fake: str) -> str:
        if fake not in self.fakes:
            raise KeyError(f"no fake named {fake!r}; have {sorted(k for k in self.fakes if k in FAKE_NAMES)}")
        return self.fakes[fake]

    def set_fault(self, fake: str, fault: str | None, key: str | None = None, once: bool = False, retry_after_secs: int | None = None, ms: int | None = None) -> None:
        body = {"fault": fault, "key": key, "once": once, "retry_after_secs": retry_after_secs, "ms": ms}
        self._ok(self._http.post(f"{self._fake(fake)}/__fake/fault", json={k: v for k, v in body.items() if v is not None or k == "fault"}))

    def clear_faults(self, fake: str) -> None:
        self.set_fault(fake, None)

    def calls(self, fake: str) -> list:
        return self._ok(self._http.get(f"{self._fake(fake)}/__fake/calls"))

    def reset_fakes(self) -> None:
        for name in FAKE_NAMES:
            if name in self.fakes:
                self._http.post(f"{self.fakes[name]}/__fake/reset")

    # -- observability ------------------------------------------------------------------
    def metrics(self) -> str:
        return self._http.get(f"{self.base_url}/metrics").text

    def log_text(self) -> str:
        return self._log.read_text(errors="replace")


class Workspace:
    def __init__(self, gw: Gateway):
        self.gw = gw
        self.id = gw.new_workspace()
        self.key = gw.new_inference_key("ws-key", workspace_id=self.id)

    def add_byok(self, provider: str = "openai", key=None, **fields) -> dict:
        return self.gw.add_byok(provider, key=key, workspace_id=self.id, **fields)

    def new_key(self, name: str = "extra") -> str:
        return self.gw.new_inference_key(name, workspace_id=self.id)

    def openai(self, **kw):
        import openai

        return openai.OpenAI(base_url=self.gw.base_url + "/v1", api_key=self.key, max_retries=0, **kw)


@pytest.fixture(scope="session")
def gw():
    if not BIN.exists():
        pytest.exit(f"{BIN} is missing: build the workspace first (scripts/test does)", returncode=3)
    tmp = Path(tempfile.mkdtemp(prefix="keyway-sdk-"))
    fakes_log = tmp / "fakes.log"
    fakes_proc = subprocess.Popen([str(BIN), "fakes"], stdout=subprocess.PIPE, stderr=fakes_log.open("w"), text=True, cwd=tmp)
    procs = [fakes_proc]
    try:
        line = fakes_proc.stdout.readline() if fakes_proc.stdout else ""
        if not line:
            raise RuntimeError(f"`keyway fakes` printed nothing:\n{fakes_log.read_text()}")
        fakes = json.loads(line)

        system_keys = {"openai": f"sk-system-{secrets.token_hex(12)}", "anthropic": f"sk-ant-system-{secrets.token_hex(12)}"}
        (tmp / "keyway.toml").write_text(
            "\n".join(
                [
                    "[[system_credentials]]",
                    'provider = "openai"',
                    'key = "env:KW_SDK_OPENAI_KEY"',
                    "",
                    "[[system_credentials]]",
                    'provider = "anthropic"',
                    'key = "env:KW_SDK_ANTHROPIC_KEY"',
                    "",
                ]
            )
        )
        mgmt = "kw-mgmt-sdk-" + secrets.token_hex(16)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYWAY_")}
        env.update(
            {
                "KEYWAY_DATA_DIR": str(tmp / "data"),
                "KEYWAY_LISTEN": f"127.0.0.1:{port}",
                "KEYWAY_BOOTSTRAP_MANAGEMENT_KEY": mgmt,
                "KW_SDK_OPENAI_KEY": system_keys["openai"],
                "KW_SDK_ANTHROPIC_KEY": system_keys["anthropic"],
                "KEYWAY_LOG": os.environ.get("KEYWAY_SDK_LOG", "info,sqlx=warn"),
                # Short enough that the "slow" fault can show Keyway's own 504 in a test; the
                # fakes answer on loopback in milliseconds.
                "KEYWAY_TIMEOUTS__FIRST_BYTE_MS": str(FIRST_BYTE_MS),
            }
        )
        for slug, url in fakes["base_urls"].items():
            env[f"KEYWAY_PROVIDERS__{slug.upper().replace('-', '_')}__BASE_URL"] = url
        log = tmp / "keyway.log"
        serve = subprocess.Popen([str(BIN), "serve", "--config", str(tmp / "keyway.toml")], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=tmp)
        procs.append(serve)
        base = f"http://127.0.0.1:{port}"
        _wait_http(base + "/health", serve, log)
        yield Gateway(base, mgmt, fakes, system_keys, log)
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("KEYWAY_SDK_KEEP_TMP"):
            print(f"kept {tmp}", file=sys.stderr)


@pytest.fixture
def ws(gw):
    return Workspace(gw)


@pytest.fixture(autouse=True)
def reset(request):
    # Only when the test uses the gateway: pure unit tests in this folder need no processes.
    if "gw" in request.fixturenames or "ws" in request.fixturenames:
        request.getfixturevalue("gw").reset_fakes()
    yield
