#!/usr/bin/env bash
# Prints the size of the wasm package as a visitor downloads it: raw and gzipped (gzip -9).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PKG="${1:-$ROOT/pkg}"
[[ -d "$PKG" ]] || { echo "no package at $PKG: run web/tools/build.sh" >&2; exit 1; }
for f in "$PKG"/*.wasm "$PKG"/*.js; do
  printf '%s %s %s\n' "$(basename "$f")" "$(stat -c %s "$f")" "$(gzip -9 -c "$f" | wc -c)"
done | awk '
  function mib(b) { return b / 1048576 }
  { printf "%-20s %10d bytes raw %10d bytes gzipped  (%.2f MiB / %.2f MiB)\n", $1, $2, $3, mib($2), mib($3)
    raw += $2; gz += $3 }
  END { printf "%-20s %10d bytes raw %10d bytes gzipped  (%.2f MiB / %.2f MiB)\n", "total", raw, gz, mib(raw), mib(gz) }'
