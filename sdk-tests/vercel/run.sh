#!/usr/bin/env bash
# The Vercel AI SDK suite: installs the pinned ai + @ai-sdk/gateway from package-lock.json
# (npm ci, only when the lock changed) and runs `node --test` on test/*.test.mjs, whose files
# start their own fakes and gateway (lib/gateway.mjs). Called by scripts/test-sdks; ends with
# "sdk-vercel: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node/npm missing"; echo "sdk-vercel: 0 passed, 1 failed"; exit 1
fi
if ! cmp -s package-lock.json node_modules/.keyway-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error >&2 || { echo "npm ci failed"; echo "sdk-vercel: 0 passed, 1 failed"; exit 1; }
  cp package-lock.json node_modules/.keyway-lock
fi
out=$(mktemp)
# Files, not a directory: Node 21+ reads `node --test` arguments as globs, and `test/` matches nothing.
node --test --test-reporter=tap test/*.test.mjs 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
p=$(grep -E '^# pass [0-9]+' "$out" | tail -n1 | grep -oE '[0-9]+'); f=$(grep -E '^# fail [0-9]+' "$out" | tail -n1 | grep -oE '[0-9]+')
p=${p:-0}; f=${f:-0}
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
echo "sdk-vercel: ${p} passed, ${f} failed"
[ "$f" -eq 0 ]
