#!/usr/bin/env bash
# Installs what is needed, builds dist/turnpike and runs it on an example config
# (default examples/quickstart.yaml): http://127.0.0.1:8080, admin on 127.0.0.1:9901.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-bun.sh
bun run build >&2
exec ./dist/turnpike run "${1:-examples/quickstart.yaml}" "${@:2}"
