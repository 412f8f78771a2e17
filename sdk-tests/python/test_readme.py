"""Runs the README's walkthrough (every ```bash block, then the ```python block) against a fresh
`keyway serve` on its own data dir, with the OpenAI fake playing OpenAI.

Substitutions, and only these: the port (127.0.0.1:8080 -> a free port), `./target/release/keyway`
-> the binary under test, and `cargo run --release -- serve` is the same binary's `serve`.

The CLI section's ```sh block runs too (`test_readme_cli_block_runs`), with its placeholders
filled: `keyway` -> the binary, `<id>` -> the id of the key its first line added, the completion
file -> a temporary path, and `map.json` written beforehand (the secret reference for the import).
"""

from __future__ import annotations

import json
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
            "KEYWAY_PROVIDERS__ANTHROPIC__BASE_URL": gw.fakes["base_urls"]["anthropic"],
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


def cli_block() -> str:
    found = [b for b in blocks("sh") if b.lstrip().startswith("keyway byok add")]
    assert len(found) == 1, "the README's CLI section has one ```sh block starting with `keyway byok add`"
    return found[0]


def test_readme_cli_block_runs(fresh_server, gw):
    port, tmp = fresh_server["port"], fresh_server["dir"]
    anthropic_key = "sk-ant-readme-" + secrets.token_hex(12)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYWAY_")}
    env.update({"KEYWAY_MANAGEMENT_KEY": fresh_server["mgmt"], "KEYWAY_URL": f"http://127.0.0.1:{port}", "ANTHROPIC_API_KEY": anthropic_key})
    completion = tmp / "keyway.bash"
    (tmp / "map.json").write_text('{"team-claude": "env:ANTHROPIC_API_KEY"}')
    lines = [l for l in cli_block().splitlines() if l.strip()]
    assert len(lines) >= 7, lines

    def run(line: str) -> subprocess.CompletedProcess:
        cmd = re.sub(r"^keyway ", f"{BIN} ", line).replace("/etc/bash_completion.d/keyway", str(completion))
        r = subprocess.run(["bash", "-c", "set -euo pipefail\n" + cmd], env=env, cwd=tmp, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"`{line}` failed:\n{r.stdout}\n{r.stderr}"
        assert anthropic_key not in r.stdout + r.stderr
        return r

    first = run(lines[0])
    assert "team-claude" in first.stdout
    listed = subprocess.run([str(BIN), "byok", "list", "-o", "json"], env=env, capture_output=True, text=True, timeout=30)
    ids = [c["id"] for c in json.loads(listed.stdout)["data"] if c["name"] == "team-claude"]
    assert len(ids) == 1, listed.stdout
    outputs = {}
    for line in lines[1:]:
        outputs[line.split("#")[0].strip()] = run(line.replace("<id>", ids[0]))
    # `byok test` reached the Anthropic fake with the key the README's user gave.
    assert any(c["key_hint"].endswith(anthropic_key[-4:]) for c in gw.calls("anthropic"))
    exported = json.loads((tmp / "byok.json").read_text())
    assert [e["name"] for e in exported["byok"]] == ["team-claude"] and anthropic_key not in json.dumps(exported)
    assert "imported 1" in next(r.stderr for k, r in outputs.items() if k.startswith("keyway import"))
    after = json.loads(subprocess.run([str(BIN), "byok", "list", "-o", "json"], env=env, capture_output=True, text=True, timeout=30).stdout)
    assert [c["name"] for c in after["data"]].count("team-claude") == 2, "import added a second credential from the reference"
    assert "_keyway" in completion.read_text()
