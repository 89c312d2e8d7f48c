#!/usr/bin/env bash
# Tests of the GPU benchmark's scripts without a GPU (a few seconds): gpu-prepare.sh's size
# accounting, refusal and staging, and gpu.sh run from a copy of exactly what would travel, on a
# stand-in `kinema` (a shell script that answers probe/bench like the real one) and the tracked
# parity-tiny model folder. A fake `ldconfig` on PATH says the Vulkan loader is installed, so
# nothing is ever unpacked into / here.
#   bash tests/bench/gpu-scripts.test.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
expect() {  # expect NAME WANT_RC GOT_RC LOG PATTERN...: the exit status and every pattern in LOG
  local name=$1 want=$2 got=$3 log=$4 p; shift 4
  if [ "$got" != "$want" ]; then bad "$name: exit $got, expected $want"; sed 's/^/     | /' "$log"; return; fi
  for p in "$@"; do
    if ! grep -qE -- "$p" "$log"; then bad "$name: no /$p/ in the output"; sed 's/^/     | /' "$log"; return; fi
  done
  ok "$name"
}

if command -v shellcheck >/dev/null; then
  if shellcheck "$ROOT"/tests/bench/*.sh; then ok "shellcheck tests/bench/*.sh"; else bad "shellcheck"; fi
fi

# A small repository shaped like this one: the scripts, the parity-tiny model, the manifest of the
# default model; .gl/ holds a placeholder loader package (gpu-prepare.sh then fetches nothing).
R=$T/repo
mkdir -p "$R/tests/bench" "$R/models/kinema-tiny" "$R/.gl"
cp "$ROOT"/tests/bench/{gpu.sh,gpu-prepare.sh,bench_model.py} "$R/tests/bench/"
cp "$ROOT/.gitignore" "$R/"
cp -r "$ROOT/models/fixtures" "$R/models/"
cp "$ROOT/models/kinema-tiny/manifest.json" "$R/models/kinema-tiny/"
echo placeholder > "$R/.gl/libvulkan1_0_amd64.deb"
git -C "$R" init -q
git -C "$R" add -A
git -C "$R" -c user.name=test -c user.email=test@localhost commit -qm fixture

# The stand-in binary: answers like `kinema`; FAKE_ADAPTER names the adapter, FAKE_SLEEP makes
# bench hang. 1.5 MB of random bytes after `exit` make its xz big enough to need staging below.
FAKE=$T/kinema
cat > "$FAKE" <<'EOF'
#!/usr/bin/env bash
case $1 in
  probe) echo "adapter: ${FAKE_ADAPTER:-NVIDIA H100 80GB HBM3 (Vulkan)}"
         echo "probe 1: 0.10 ms, sum 1.0000 (expected 1.0000) ok";;
  bench) sleep "${FAKE_SLEEP:-0}"
         echo "warm-up: 900 ms for 16 frames (includes kernel compilation)"
         echo "run 1: text 1.0 ms | denoise step 9.0 ms (n=2) | total 99 ms | 16 frames, 160.00 frames/s"
         echo "run 2: text 1.0 ms | denoise step 9.0 ms (n=2) | total 98 ms | 16 frames, 161.00 frames/s";;
esac
exit 0
EOF
head -c 1500000 /dev/urandom >> "$FAKE"
chmod +x "$FAKE"
mkdir "$T/bin"
printf '#!/bin/sh\necho "\tlibvulkan.so.1 (libc6,x86-64) => /fake/libvulkan.so.1"\n' > "$T/bin/ldconfig"
chmod +x "$T/bin/ldconfig"
export PATH="$T/bin:$PATH" KINEMA_CACHE="$T/cache"

prepare() { (cd "$R" && bash tests/bench/gpu-prepare.sh --binary "$FAKE" --text no "$@") > "$T/prep.log" 2>&1; }
tree_bytes() { (cd "$R" && git ls-files -z | xargs -0 stat -c %s | awk '{ s += $1 } END { print s }'); }
TREE=$(tree_bytes)

# 1. everything fits: one call, carrying the loaders and the binary
rc=0; prepare --copy-to "$T/one" || rc=$?
expect "prepare: one call" 0 $rc "$T/prep.log" '^ONE device call' 'carry: +\[".gl", ".bench"\]' 'command: +bash tests/bench/gpu.sh'

# 2. over the limit: refused, naming the size; an untracked file counts towards it
rc=0; prepare --limit $((TREE - 1000)) || rc=$?
expect "prepare: refuses a tree over the limit" 1 $rc "$T/prep.log" 'REFUSED: the tree alone'
LIMIT=$((TREE + 262144 + 1900000))   # room for the binary in two parts, not in one
rc=0; prepare --limit $LIMIT || rc=$?
expect "prepare: room for the binary in one call" 0 $rc "$T/prep.log" '^ONE device call'
head -c 700000 /dev/urandom > "$R/untracked.bin"
rc=0; prepare --limit $LIMIT --copy-to "$T/staged" || rc=$?
expect "prepare: an untracked file travels and counts: two staged calls" 0 $rc "$T/prep.log" \
  'untracked, not ignored +700000 bytes' '^2 device calls' 'call 1 .*carry \[".bench/stage-1"\]' \
  'carry: +\[".gl", ".bench/stage-2"\]'
rm "$R/untracked.bin"

# 3. gpu.sh from a copy of what travels
gpu() {  # gpu DIR ARGS...: run gpu.sh there with OUT and its work folder in $T
  local dir=$1; shift
  rm -rf "$T/out" "$T/work"
  (cd "$dir" && OUT=$T/out KINEMA_BENCH_WORK=$T/work bash tests/bench/gpu.sh --model models/fixtures/tiny "$@") \
    > "$T/gpu.log" 2>&1
}
rc=0; gpu "$T/one" --quick --no-cpu || rc=$?
expect "gpu.sh: hardware Vulkan adapter, one call" 0 $rc "$T/gpu.log" 'sha256 verified' \
  "adapter 'NVIDIA H100 80GB HBM3' \(Vulkan\)" 'wgpu, 2 s clip, 2 steps: run 2: .*161.00 frames/s' \
  '0 failed or cut, 0 skipped'
if diff <(head -n -1 "$T/gpu.log") "$T/out/gpu-bench.txt" >/dev/null; then
  ok "gpu.sh: the output is in \$OUT/gpu-bench.txt"
else
  bad "gpu.sh: \$OUT/gpu-bench.txt differs from what it printed"
fi
rc=0; gpu "$T/staged" --seconds "1 15" --steps "2 4" || rc=$?
expect "gpu.sh: binary reassembled from two staged calls, full grid + cpu" 0 $rc "$T/gpu.log" \
  'reassembled from 2 parts' 'wgpu, 15 s clip, 4 steps: run 2' 'cpu, 2 s clip, 2 steps: run 1'
rc=0; FAKE_ADAPTER="llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)" gpu "$T/one" --quick || rc=$?
expect "gpu.sh: refuses a software adapter" 3 $rc "$T/gpu.log" "REFUSED: the adapter is 'llvmpipe"
if grep -q '== bench' "$T/gpu.log"; then bad "gpu.sh: benched after refusing"; fi
rc=0; FAKE_ADAPTER="llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)" gpu "$T/one" --quick --allow-software || rc=$?
expect "gpu.sh: --allow-software runs on it" 0 $rc "$T/gpu.log" 'NOTE: .*--allow-software' 'wgpu, 1 s clip'
rc=0; FAKE_ADAPTER="NVIDIA H100 80GB HBM3/PCIe/SSE2 (Gl)" gpu "$T/one" --quick || rc=$?
expect "gpu.sh: refuses a GPU reached through OpenGL, not Vulkan" 3 $rc "$T/gpu.log" 'REFUSED: .* on Gl'
rc=0; FAKE_SLEEP=30 gpu "$T/one" --quick --budget 36 || rc=$?
expect "gpu.sh: a run past the budget is cut, the rest skipped" 1 $rc "$T/gpu.log" \
  'cut at the budget' 'skipped: wgpu, 2 s clip' '1 failed or cut, 2 skipped'
printf x >> "$T/staged/.bench/stage-2/kinema.xz.part"
rc=0; gpu "$T/staged" --quick || rc=$?
expect "gpu.sh: refuses a corrupt binary" 4 $rc "$T/gpu.log" 'binary: sha256 .* expected'
rm "$T/staged/.bench/stage-1/kinema.xz.part"
rc=0; gpu "$T/staged" --quick || rc=$?
expect "gpu.sh: says which staged part is missing" 4 $rc "$T/gpu.log" 'part 1 of 2 is missing'

[ $fails -eq 0 ] || { echo "$fails failed"; exit 1; }
echo "all GPU-bench script tests passed"
