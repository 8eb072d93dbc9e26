#!/usr/bin/env bash
# Makes sure Bun and the project's packages are installed. Bun comes from the npm
# registry; nothing else is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

BUN_VERSION="${BUN_VERSION:-1.4.5}"
if ! command -v bun >/dev/null 2>&1; then
  echo "turnpike: installing Bun ${BUN_VERSION} from the npm registry" >&2
  if ! npm install -g "bun@${BUN_VERSION}" >&2 || ! bun --version >/dev/null 2>&1; then
    # Some npm set-ups refuse install scripts; the package's own launcher still works
    # when its postinstall is allowed explicitly.
    npm install -g --allow-scripts=bun "bun@${BUN_VERSION}" >&2
  fi
fi
bun --version >/dev/null
bun install --frozen-lockfile >&2 2>/dev/null || bun install >&2
