#!/usr/bin/env bash
# Runs the whole test suite: installs Bun and packages, builds dist/turnpike (the
# integration tests drive the real binary), then `bun test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-bun.sh
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
bun run build >&2
exec bun test --timeout 60000 "$@"
