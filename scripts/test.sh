#!/usr/bin/env bash
# Runs the whole test suite: installs Bun and packages, builds dist/turnpike (the
# integration tests drive the real binary), then `bun test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-bun.sh
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
# Headless Chromium checks CORS as a browser enforces it (src/policies/cors/cors-browser.test.ts).
command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; } || echo "warning: chromium not installed; the browser CORS test is skipped" >&2
bun run build >&2
# The cluster-mode tests run a real Hazelcast member: fetch it with Maven once (cached in
# .cache/hazelcast, bounded wait). Without java the tests say so and count as skipped.
if command -v java >/dev/null; then scripts/hazelcast.sh fetch >&2 || echo "warning: could not fetch Hazelcast; the cluster tests will try again" >&2; fi
exec bun test --timeout 60000 "$@"
