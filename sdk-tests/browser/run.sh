#!/usr/bin/env bash
# The dashboard in a real browser: installs Debian's Chromium when absent (no browser download
# works here), the pinned playwright-core and axe-core from package-lock.json (npm ci, only when
# the lock changed), then runs `node --test` on test/*.test.mjs, which start their own fakes and
# `keyway serve` (../node/lib/gateway.mjs). Screenshots land in screenshots/ (gitignored).
# Called by scripts/test-sdks; ends with "sdk-browser: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")"
fail() { echo "$1"; echo "sdk-browser: 0 passed, 1 failed"; exit 1; }
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  fail "node/npm missing"
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (apt-get)" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; } >&2 \
    || fail "could not install chromium"
fi
if ! cmp -s package-lock.json node_modules/.keyway-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error >&2 || fail "npm ci failed"
  cp package-lock.json node_modules/.keyway-lock
fi
mkdir -p screenshots
out=$(mktemp)
node --test --test-reporter=tap --test-concurrency=1 test/*.test.mjs 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
p=$(grep -E '^# pass [0-9]+' "$out" | tail -n1 | grep -oE '[0-9]+'); f=$(grep -E '^# fail [0-9]+' "$out" | tail -n1 | grep -oE '[0-9]+')
p=${p:-0}; f=${f:-0}
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
echo "sdk-browser: ${p} passed, ${f} failed"
[ "$f" -eq 0 ]
