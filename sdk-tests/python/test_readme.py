"""Runs the README's walkthrough (every ```bash block, then the ```python block) against a fresh
`keyway serve` on its own data dir, with the OpenAI fake playing OpenAI.

Substitutions, and only these: the port (127.0.0.1:8080 -> a free port), `./target/release/keyway`
-> the binary under test, and `cargo run --release -- serve` is the same binary's `serve`.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import BIN, ROOT, _wait_http, free_port

README = ROOT / "README.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_readme_has_the_two_commands():
    sh = blocks("sh")
    assert any(b.strip() == "cargo run --release -- serve" for b in sh)
    assert any(b.strip() == "scripts/test" for b in sh)


@pytest.fixture
def fresh_server(gw):
    """A second gateway on an empty data dir (the walkthrough starts from nothing)."""
    tmp = Path(tempfile.mkdtemp(prefix="keyway-readme-"))
    port = free_port()
    mgmt = "kw-mgmt-readme-" + secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYWAY_")}
    env.update(
        {
            "KEYWAY_DATA_DIR": str(tmp / "keyway-data"),
            "KEYWAY_LISTEN": f"127.0.0.1:{port}",
            "KEYWAY_BOOTSTRAP_MANAGEMENT_KEY": mgmt,
            "KEYWAY_PROVIDERS__OPENAI__BASE_URL": gw.fakes["base_urls"]["openai"],
            "KEYWAY_LOG": "warn",
        }
    )
    log = tmp / "serve.log"
    proc = subprocess.Popen([str(BIN), "serve"], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=tmp)
    try:
        _wait_http(f"http://127.0.0.1:{port}/health", proc, log)
        yield {"port": port, "mgmt": mgmt, "dir": tmp, "log": log}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def adapt(text: str, port: int) -> str:
    return text.replace("127.0.0.1:8080", f"127.0.0.1:{port}").replace("./target/release/keyway", str(BIN))


def test_readme_walkthrough_runs(fresh_server, gw):
    port, tmp = fresh_server["port"], fresh_server["dir"]
    openai_key = "sk-readme-" + secrets.token_hex(12)
    script = "set -euo pipefail\n" + "\n".join(adapt(b, port) for b in blocks("bash")) + '\necho "KEYWAY_KEY=$KEYWAY_KEY"\n'
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYWAY_")}
    env.update({"KEYWAY_MANAGEMENT_KEY": fresh_server["mgmt"], "OPENAI_API_KEY": openai_key, "KEYWAY_URL": f"http://127.0.0.1:{port}"})
    r = subprocess.run(["bash", "-c", script], env=env, cwd=tmp, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"README bash blocks failed:\n{r.stdout}\n{r.stderr}"
    out = r.stdout
    assert '"provider": "openai"' in out and openai_key not in out
    assert "Echo: Hello!" in out  # step 3, through the fake
    assert "data: [DONE]" in out  # step 4 streamed
    assert re.search(r"x-keyway-provider: openai", out, re.I)
    assert '"cost_micros"' in out and '"attempts"' in out  # step 5
    assert "my openai key" in out  # step 6, the CLI
    # The key the README's user supplied reached OpenAI (the fake), and only as the bearer token.
    assert any(c["key_hint"].endswith(openai_key[-4:]) for c in gw.calls("openai"))

    key = re.search(r"^KEYWAY_KEY=(kw-\S+)$", out, re.M)
    assert key, out
    py = adapt(blocks("python")[0], port)
    r = subprocess.run([sys.executable, "-c", py], env={**env, "KEYWAY_KEY": key.group(1)}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Echo: Hello from Python" in r.stdout
    assert "Echo: Stream, please" in r.stdout
    assert openai_key not in fresh_server["log"].read_text()
