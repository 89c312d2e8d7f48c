#!/usr/bin/env bash
# Run HERE before a device call: what the call would send, against the tool's 64 MiB.
#   bash models/train/device/carry.sh [PATH ...]   # the call's `carry` paths, from the repository root
# The tool sends tracked files, untracked files git does not ignore, and the carried (ignored) paths;
# a call over 64 MiB is refused whole, after the machine has started, which costs device time.
# Prints each part and the total; exits 1 when the call would be refused or a carried path is
# missing here (the tool would delete it there).
set -euo pipefail
cd "$(dirname "$0")/../../.."
LIMIT=$((64 * 1048576))
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
# the sizes of the NUL-separated files on stdin, summed (files listed but gone count 0)
bytes() { { xargs -0 -r du -b 2>/dev/null || true; } | awk '{ s += $1 } END { print s + 0 }'; }

total=$(git ls-files -z --cached --others --exclude-standard | bytes)
echo "tree that travels: $(mib "$total")"
status=0
for p in "$@"; do
  if [ ! -e "$p" ]; then
    echo "carry $p: not here (the tool would remove it there)"; status=1; continue
  fi
  # only what the tree does not already send: the ignored files under the path
  b=$(git ls-files -z --others --ignored --exclude-standard -- "$p" | bytes)
  echo "carry $p: $(mib "$b")"
  total=$((total + b))
done
if [ "$total" -gt "$LIMIT" ]; then
  echo "total $(mib "$total") of 64 MiB: OVER by $(mib $((total - LIMIT))); the call would be refused"
  exit 1
fi
echo "total $(mib "$total") of 64 MiB: fits ($(mib $((LIMIT - total))) to spare)"
exit $status
