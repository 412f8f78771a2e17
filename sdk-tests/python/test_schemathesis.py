"""Schemathesis against the management API, from Keyway's own `/api/v1/openapi.json`.

A real `keyway serve` (the ``gw`` fixture: providers point at the fakes, so Test key and
`"test": true` reach loopback only) with its admin key; every documented operation gets up to
25 generated cases (seeded, so a run repeats), checked for no 5xx and for answers that match the
documented schema, with nothing logged at WARN or ERROR meanwhile. Bounded: the run is stopped
and failed past 90 s of wall clock (it takes ~15 s). The credentials it creates are removed after.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

MAX_EXAMPLES = 25
WALL_CLOCK_S = 90
SEED = 20


def _byok_ids(gw) -> set[str]:
    """The default workspace's credentials and the global ones (what its routing may use)."""
    ids, offset = set(), 0
    while True:
        page = gw.api("GET", "/byok", params={"offset": offset, "limit": 100}).json()
        ids |= {c["id"] for c in page["data"]}
        offset += len(page["data"])
        if not page["data"] or offset >= page["total_count"]:
            return ids


@pytest.fixture
def no_leftover_credentials(gw):
    """The fuzzer creates credentials, global ones too: remove them so later tests route as before."""
    before = _byok_ids(gw)
    yield
    for cid in _byok_ids(gw) - before:
        gw.api("DELETE", f"/byok/{cid}")


def test_management_api_has_no_5xx_and_matches_its_schema(gw, tmp_path, no_leftover_credentials):
    exe = Path(sys.executable).with_name("schemathesis")
    # Missing means the install failed: a failure, never a silent skip.
    assert exe.exists(), f"{exe} is missing: pip install -r sdk-tests/python/requirements-schemathesis.txt"
    report = tmp_path / "run.json"
    cmd = [
        str(exe),
        "run",
        f"{gw.base_url}/api/v1/openapi.json",
        "--url",
        gw.base_url,
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--phases",
        "examples,coverage,fuzzing",
        "--generation-database",
        "none",
        "--no-color",
        "--request-timeout",
        "10",
        "--header",
        f"Authorization: Bearer {gw.mgmt_key}",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    log_start = len(gw.log_text())
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=WALL_CLOCK_S, env=env, cwd=tmp_path)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"schemathesis ran past {WALL_CLOCK_S}s:\n{(e.stdout or '')[-4000:]}")
    out = run.stdout + run.stderr
    # The summary for the closing note (shown with `pytest -rA` or on failure).
    summary = [l for l in out.splitlines() if re.search(r"(operations?|test cases?|passed|failed|generated)", l, re.I)]
    print("\n".join(summary[-12:]))
    assert run.returncode == 0, f"schemathesis found failures (exit {run.returncode}):\n{out[-12000:]}"
    # A run that tested nothing (a broken document, every operation skipped) is no pass.
    assert re.search(r"\b[1-9]\d* passed\b", out) or re.search(r"[1-9]\d* (generated|test cases)", out), out[-4000:]
    # Nothing broke out of sight either: no panic, and no error or warning logged by the
    # gateway while fuzzed (an overflowing credit sum once showed only as a WARN).
    logged = gw.log_text()[log_start:]
    bad = [l for l in logged.splitlines() if "panicked" in l or re.search(r"\b(ERROR|WARN)\b", l)]
    assert not bad, "\n".join(bad[:20])
