#!/usr/bin/env bash
# Prepares the GPU benchmark (tests/bench/gpu.sh) for the lent GPU machine and prints the exact
# arguments of the device tool's `run`: one call, or, when what must travel does not fit into the
# tool's 64 MiB, a few calls made back to back. Run it HERE, in the checkout the device tool sends
# (the session's own checkout, not a helper's worktree): its tracked and untracked-not-ignored
# files travel with every call and count against the limit.
#   bash tests/bench/gpu-prepare.sh [--binary PATH] [--features LIST] [--text auto|yes|no]
#                                   [--assume-tracked BYTES] [--limit BYTES] [--copy-to DIR]
#
# 1. the native release binary: `cargo build --release --locked --bin kinema` (CARGO_TARGET_DIR is
#    honoured; --features is passed on), or --binary PATH as it is (a warning if older than the
#    sources); stripped and xz-compressed (cached in ~/.cache/kinema/gpu-bench by sha256) into
#    .bench/ with info.txt (commit, sha256, sizes), which the device side prints;
# 2. the Vulkan loader packages into .gl/ (apt-get download, as the device README says);
# 3. the text encoder's shards models/kinema-tiny/text-*.safetensors (45.1 MB, git-ignored;
#    models/train/build_default_model.sh builds them), carried when they fit (--text auto), always
#    (yes: refuse if they do not fit) or never (no); without them the machine runs the benchmark
#    on a same-shape random text encoder (bench_model.py), which times the same;
# 4. sizes: tracked + untracked-not-ignored + ignored files under shared/ + what is carried,
#    against --limit (default 64 MiB = 67108864 bytes, less a 256 KiB margin). If the binary
#    does not fit beside the tree it is split over staging calls (.bench/stage-K/, K = 1..N; the
#    machine keeps carried files while warm, 30 s after each call); when even that is impossible
#    it refuses. --assume-tracked BYTES adds bytes to the tracked tree to plan a what-if (e.g. the
#    56363222 bytes of DiT + decoder shards once trained ones are committed);
# 5. --copy-to DIR: a copy of exactly what would travel (all stages), to try gpu.sh here.
# .bench/ and .gl/ are in .gitignore. Exit status 0 with the plan printed, 1 refused or failed.
set -euo pipefail
trap 'echo "gpu-prepare: failed at line $LINENO" >&2' ERR
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

BINARY=
FEATURES=
TEXT=auto
ASSUME=0
LIMIT=67108864
MARGIN=262144
COPY_TO=
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --binary) BINARY=$2; shift 2;;
    --features) FEATURES=$2; shift 2;;
    --text) TEXT=$2; shift 2;;
    --assume-tracked) ASSUME=$2; shift 2;;
    --limit) LIMIT=$2; shift 2;;
    --copy-to) COPY_TO=$2; shift 2;;
    -h|--help) usage; exit 0;;
    *) echo "gpu-prepare: unknown argument $1 (see --help)" >&2; exit 1;;
  esac
done
die() { echo "gpu-prepare: $*" >&2; exit 1; }
case $TEXT in auto|yes|no) ;; *) die "--text takes auto, yes or no";; esac
for n in "$ASSUME" "$LIMIT"; do case $n in ''|*[!0-9]*) die "sizes are whole bytes: $n";; esac; done
git rev-parse --git-dir >/dev/null 2>&1 || die "$ROOT is not a git checkout"
TEXT_PATHS=(models/kinema-tiny/text-00.safetensors models/kinema-tiny/text-01.safetensors
            models/kinema-tiny/text-02.safetensors models/kinema-tiny/text-03.safetensors)
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
# Bytes of the files named NUL-separated on stdin (files that are gone count 0), of those under PATHs.
sum_sizes() { { xargs -0 -r stat -c %s -- 2>/dev/null || true; } | awk '{ s += $1 } END { print s + 0 }'; }
files_size() { local p; for p in "$@"; do find "$p" -type f -print0 2>/dev/null || true; done | sum_sizes; }

# --- 1. binary -------------------------------------------------------------------------------
GIVEN=$BINARY
STALE=
if [ -z "$BINARY" ]; then
  echo "building the release binary (cargo build --release --locked --bin kinema${FEATURES:+ --features $FEATURES})"
  cargo build --release --locked --bin kinema ${FEATURES:+--features "$FEATURES"}
  BINARY=${CARGO_TARGET_DIR:-$ROOT/target}/release/kinema
else
  [ -z "$FEATURES" ] || die "--features builds; it does not go with --binary"
  STALE=$(find crate/src crate/Cargo.toml Cargo.lock -type f -newer "$BINARY" 2>/dev/null | head -3 | tr '\n' ' ' || true)
  [ -z "$STALE" ] || echo "WARNING: $BINARY is older than $STALE(rebuild it, or say which source it is from)"
fi
if [ ! -f "$BINARY" ] || [ ! -x "$BINARY" ]; then die "no executable binary at $BINARY"; fi
[ "$(uname -m)" = x86_64 ] || die "this machine is $(uname -m); the GPU machine needs an x86-64 build"
WORKDIR=$(mktemp -d)
trap 'rm -rf "$WORKDIR"' EXIT
if ! strip -o "$WORKDIR/kinema" "$BINARY" 2>/dev/null; then
  echo "note: $BINARY could not be stripped (not an ELF file?); carried as it is"
  cp "$BINARY" "$WORKDIR/kinema"
fi
BIN_SHA=$(sha256sum "$WORKDIR/kinema" | cut -c1-64)
CACHE=${KINEMA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kinema}/gpu-bench
mkdir -p "$CACHE"
XZ=$CACHE/$BIN_SHA.xz
if [ ! -f "$XZ" ]; then
  echo "compressing the stripped binary ($(mib "$(stat -c %s "$WORKDIR/kinema")")) with xz -9 (a minute or so)"
  nice -n 19 xz -9 -T1 -c "$WORKDIR/kinema" > "$XZ.tmp"
  mv "$XZ.tmp" "$XZ"
fi
XZ_SHA=$(sha256sum "$XZ" | cut -c1-64)
XZ_BYTES=$(stat -c %s "$XZ")
GLIBC=$(objdump -T "$WORKDIR/kinema" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 || true)

# --- 2. Vulkan loaders -----------------------------------------------------------------------
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  echo "fetching the Vulkan/EGL loader packages into .gl/ (apt-get download, amd64)"
  mkdir -p .gl /tmp/amd64/partial
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
  apt-get "${o[@]}" update >/dev/null
  (cd .gl && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi

# --- 3. text shards --------------------------------------------------------------------------
text_ok() {
  python3 - "${TEXT_PATHS[@]}" <<'EOF'
import hashlib, json, sys
from pathlib import Path
m = json.loads(Path("models/kinema-tiny/manifest.json").read_text())
want = {f["path"]: f for f in m["files"] if f["role"] == "text"}
got = {Path(p).name for p in sys.argv[1:]}
if set(want) != got:
    sys.exit(f"the manifest's text shards are {sorted(want)}, not {sorted(got)}: update gpu-prepare.sh")
for p in sys.argv[1:]:
    f, q = want[Path(p).name], Path(p)
    if not q.is_file() or q.stat().st_size != f["size"] or \
            hashlib.sha256(q.read_bytes()).hexdigest() != f["sha256"]:
        sys.exit(1)
EOF
}
if [ "$TEXT" != no ] && ! text_ok; then
  echo "building models/kinema-tiny (its text shards are missing or differ)"
  if ! bash models/train/build_default_model.sh || ! text_ok; then
    [ "$TEXT" = yes ] && die "the text shards could not be built"
    echo "WARNING: no text shards; the GPU machine will use a random text encoder of the same shapes"
    TEXT=no
  fi
fi

# --- 4. sizes and the plan -------------------------------------------------------------------
TRACKED=$(git ls-files -z | sum_sizes)
UNTRACKED=$(git ls-files -z --others --exclude-standard | sum_sizes)
SHARED=0
[ -d shared ] && SHARED=$(git ls-files -z --others --ignored --exclude-standard shared | sum_sizes)
TREE=$((TRACKED + UNTRACKED + SHARED + ASSUME))
GL=$(files_size .gl)
TEXT_BYTES=$(files_size "${TEXT_PATHS[@]}")
ROOM=$((LIMIT - MARGIN))
echo
echo "what travels (limit $(mib "$LIMIT"), planned to $(mib "$ROOM")):"
printf '  %-44s %12d bytes  %s\n' "tracked files" "$TRACKED" "$(mib "$TRACKED")" \
  "untracked, not ignored" "$UNTRACKED" "$(mib "$UNTRACKED")" "shared/ (ignored part)" "$SHARED" "$(mib "$SHARED")"
[ "$ASSUME" -eq 0 ] || printf '  %-44s %12d bytes  %s\n' "assumed tracked (--assume-tracked)" "$ASSUME" "$(mib "$ASSUME")"
printf '  %-44s %12d bytes  %s\n' ".gl (Vulkan loaders)" "$GL" "$(mib "$GL")" \
  ".bench/kinema.xz (stripped $(stat -c %s "$WORKDIR/kinema") bytes)" "$XZ_BYTES" "$(mib "$XZ_BYTES")"
[ "$TEXT" = no ] || printf '  %-44s %12d bytes  %s\n' "text shards (4 files)" "$TEXT_BYTES" "$(mib "$TEXT_BYTES")"
[ -z "$(git ls-files --others --exclude-standard | head -1)" ] ||
  echo "  (untracked files travel too: $(git ls-files --others --exclude-standard | head -5 | tr '\n' ' '))"

PARTS=1
if [ "$TEXT" != no ] && [ $((TREE + GL + XZ_BYTES + TEXT_BYTES)) -le "$ROOM" ]; then
  :
elif [ "$TEXT" = yes ]; then
  die "REFUSED: tree + loaders + binary + text shards = $(mib $((TREE + GL + XZ_BYTES + TEXT_BYTES))), over $(mib "$ROOM"); try --text no (a random text encoder of the same shapes times the same)"
else
  [ "$TEXT" = no ] || echo "the text shards do not fit beside the rest: the machine will use a random text encoder of the same shapes"
  TEXT=no
  if [ $((TREE + GL + XZ_BYTES)) -gt "$ROOM" ]; then
    CHUNK=$((ROOM - TREE - GL))
    if [ "$CHUNK" -lt 1048576 ]; then
      die "REFUSED: the tree alone is $(mib "$TREE") (+ $(mib "$GL") of loaders): less than 1 MiB would be left per call under $(mib "$ROOM") for the $(mib "$XZ_BYTES") binary. Make the tree smaller (untracked files? large tracked files?)"
    fi
    PARTS=$(( (XZ_BYTES + CHUNK - 1) / CHUNK ))
    [ "$PARTS" -le 6 ] || die "REFUSED: the binary would need $PARTS staging calls of $(mib "$CHUNK"); make the tree smaller"
    CHUNK=$(( (XZ_BYTES + PARTS - 1) / PARTS ))
  fi
fi

rm -rf .bench
mkdir -p .bench
info() {
  echo "checkout: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crate Cargo.toml Cargo.lock || echo ' + uncommitted changes in crate/ or Cargo.*')"
  if [ -n "$GIVEN" ]; then
    echo "binary: $BINARY as given (--binary), built $(date -u -r "$BINARY" '+%Y-%m-%d %H:%M UTC')${STALE:+; older than $STALE}"
  else
    echo "binary: built from this checkout $(date -u -r "$BINARY" '+%Y-%m-%d %H:%M UTC')${FEATURES:+, features $FEATURES}"
  fi
  echo "stripped sha256: $BIN_SHA ($(stat -c %s "$WORKDIR/kinema") bytes; needs ${GLIBC:-glibc ?})"
  echo "xz sha256: $XZ_SHA"
  echo "parts: $PARTS"
  echo "prepared: $(date -u '+%Y-%m-%d %H:%M UTC')"
}
CARRY_LAST=(.gl)
if [ "$PARTS" -eq 1 ]; then
  cp "$XZ" .bench/kinema.xz
  info > .bench/info.txt
  CARRY_LAST+=(.bench)
else
  split -b "$CHUNK" -d -a 2 "$XZ" "$WORKDIR/part."
  for ((k = 1; k <= PARTS; k++)); do
    mkdir -p ".bench/stage-$k"
    mv "$WORKDIR/part.$(printf %02d $((k - 1)))" ".bench/stage-$k/kinema.xz.part"
    info > ".bench/stage-$k/info.txt"
  done
  CARRY_LAST+=(".bench/stage-$PARTS")
fi
[ "$TEXT" = no ] || CARRY_LAST+=("${TEXT_PATHS[@]}")

# Each call as it will be sent, measured from the files now on disk.
json() { local s="" p; for p in "$@"; do s+="${s:+, }\"$p\""; done; echo "[$s]"; }
check_call() {  # check_call N PATH...: the call's total against the limit
  local n=$1; shift
  local total=$((TREE + $(files_size "$@")))
  [ "$total" -le "$LIMIT" ] || die "REFUSED: call $n would send $(mib "$total"), over $(mib "$LIMIT")"
  echo "$total"
}
echo
if [ "$PARTS" -eq 1 ]; then
  total=$(check_call 1 "${CARRY_LAST[@]}")
  echo "ONE device call ($(mib "$total") of $(mib "$LIMIT"); $(mib $((LIMIT - total))) to spare):"
else
  echo "$PARTS device calls, back to back (the machine stays warm 30 s after each; if it went cold,"
  echo "start again from call 1 - gpu.sh says so when a part is missing). Not yet tried on a machine:"
  for ((k = 1; k < PARTS; k++)); do
    total=$(check_call "$k" ".bench/stage-$k")
    echo "  call $k ($(mib "$total")): carry $(json ".bench/stage-$k")"
    echo "    command: ls -l .bench/*/"
  done
  total=$(check_call "$PARTS" "${CARRY_LAST[@]}")
  echo "  call $PARTS ($(mib "$total")), the benchmark:"
fi
echo "  carry:     $(json "${CARRY_LAST[@]}")"
echo "  command:   bash tests/bench/gpu.sh"
echo "  timeout_s: 600"
echo "  then read files_at/gpu-bench.txt (its summary is at the end)."
[ "$TEXT" != no ] || echo "  (text encoder: random stand-in of the same shapes on the machine; its timings are the same)"

if [ -n "$COPY_TO" ]; then
  [ ! -e "$COPY_TO" ] || [ -z "$(ls -A "$COPY_TO")" ] || die "--copy-to $COPY_TO is not empty"
  mkdir -p "$COPY_TO"
  { git ls-files -z; git ls-files -z --others --exclude-standard; } |
    xargs -0 -r cp --parents -P -t "$COPY_TO" -- 2>/dev/null || true
  CARRY_ALL=(.gl .bench)
  [ "$TEXT" = no ] || CARRY_ALL+=("${TEXT_PATHS[@]}")
  cp -r --parents -t "$COPY_TO" -- "${CARRY_ALL[@]}"
  echo
  echo "copied what would travel (all calls) to $COPY_TO: $(mib "$(files_size "$COPY_TO")")"
fi
