#!/usr/bin/env bash
# The main job: install what is missing, build the wasm package, serve the page and the models.
#   web/tools/run.sh [--port N] [--host ADDR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
"$ROOT/web/tools/setup.sh"
"$ROOT/web/tools/build.sh"
exec node "$ROOT/web/tools/serve.mjs" "$@"
