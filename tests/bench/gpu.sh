#!/usr/bin/env bash
# The GPU benchmark: `kinema probe` and `kinema bench` natively on wgpu over Vulkan, run on the lent
# GPU machine as the command of one device call, from the repository root:
#   bash tests/bench/gpu.sh [--model DIR] [--seconds "1 2 15"] [--steps "2 4"] [--quick]
#                           [--budget SECONDS] [--no-cpu] [--allow-software]
# tests/bench/gpu-prepare.sh prepares it here (binary, loaders, sizes) and prints the exact call.
#
# What it does: unpacks the Vulkan loaders carried in .gl/ when the machine has none, unpacks the
# release binary carried in .bench/ (xz; in parts when the call was staged) and checks its sha256,
# prints the machine (GPU name, driver, Vulkan ICDs) and `kinema probe --backend wgpu`, REFUSES a
# software adapter (llvmpipe, lavapipe, SwiftShader) or a non-Vulkan one unless --allow-software,
# completes the model folder (tests/bench/bench_model.py: carried or rebuilt shards, else
# same-shape random stand-ins, each named), then runs `kinema bench --backend wgpu` for every
# clip length × step count (a warm-up with shader compilation + --repeat timed runs each) and
# once `--backend cpu` for comparison. Every step runs under what is left of --budget (default 480 s,
# inside the 10-minute call); what does not fit is skipped and said. All output goes to
# $OUT/gpu-bench.txt, ending with a summary.
# Exit status: 0 all ran; 1 a bench failed or was cut; 2 usage; 3 no hardware Vulkan adapter;
# 4 binary missing or corrupt; 5 model folder.
# Locally (no GPU), with a software Vulkan adapter and the tiny fixture model:
#   XDG_RUNTIME_DIR=/tmp VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json OUT=/tmp/o \
#     bash tests/bench/gpu.sh --model models/fixtures/tiny --allow-software --quick
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 2

MODEL=models/kinema-tiny
SECONDS_LIST="1 2 15"
STEPS_LIST="2 4"
REPEAT=3          # timed runs per clip of 1 or 2 s; 2 for longer clips
BUDGET=480
CPU=1
ALLOW_SOFTWARE=0
ARGS="$*"
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --model) MODEL=$2; shift 2;;
    --seconds) SECONDS_LIST=$2; shift 2;;
    --steps) STEPS_LIST=$2; shift 2;;
    --quick) SECONDS_LIST="1 2"; STEPS_LIST=2; REPEAT=1; shift;;
    --budget) BUDGET=$2; shift 2;;
    --no-cpu) CPU=0; shift;;
    --allow-software) ALLOW_SOFTWARE=1; shift;;
    -h|--help) usage; exit 0;;
    *) echo "gpu.sh: unknown argument $1 (see --help)" >&2; exit 2;;
  esac
done
case $BUDGET in ''|*[!0-9]*) echo "gpu.sh: --budget takes whole seconds" >&2; exit 2;; esac

OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
LOG="$OUT/gpu-bench.txt"
WORK=${KINEMA_BENCH_WORK:-/tmp/kinema-bench}
NVIDIA_ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
NVIDIA_EGL=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
SOFTWARE_RE='llvmpipe|lavapipe|swiftshader|softpipe|software|basic render'
START=$SECONDS

step() { printf '\n== %s (%d s in) ==\n' "$*" $((SECONDS - START)); }
left() { echo $((BUDGET - (SECONDS - START))); }

unpack_loaders() {
  if ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
    echo "Vulkan loader: already installed ($(ldconfig -p | grep -m1 'libvulkan\.so\.1' | sed 's/.*=> //'))"
    return 0
  fi
  local debs=(.gl/*.deb)
  if [ ! -e "${debs[0]}" ]; then
    echo "no Vulkan loader on this machine and none carried in .gl/ (run tests/bench/gpu-prepare.sh)"
    return 1
  fi
  # As the device README says: the loaders (only these) are unpacked into /.
  for f in "${debs[@]}"; do dpkg -x "$f" / || return 1; done
  ldconfig
  echo "Vulkan loader: unpacked ${#debs[@]} packages from .gl/ ($(cd .gl && echo *.deb))"
}

# The binary: .bench/kinema.xz, or .bench/stage-*/kinema.xz.part when it came in several calls.
unpack_binary() {
  mkdir -p "$WORK"
  if [ -n "${KINEMA_BIN:-}" ]; then BIN=$KINEMA_BIN; echo "binary: $BIN (KINEMA_BIN)"; return 0; fi
  local info xz=$WORK/kinema.xz
  if [ -f .bench/kinema.xz ]; then
    info=.bench/info.txt
    cp .bench/kinema.xz "$xz"
  else
    info=$(find .bench -path '.bench/stage-*/info.txt' 2>/dev/null | head -1)
    if [ -z "$info" ]; then
      echo "no binary: neither .bench/kinema.xz nor .bench/stage-*/ is here (name .bench in carry;"
      echo "prepare it with tests/bench/gpu-prepare.sh)"
      return 1
    fi
    local n k
    n=$(sed -n 's/^parts: //p' "$info")
    : > "$xz"
    for ((k = 1; k <= n; k++)); do
      if [ ! -f ".bench/stage-$k/kinema.xz.part" ]; then
        echo "binary part $k of $n is missing: the machine went cold between the staging calls"
        echo "(or a call skipped it). Make the calls again from call 1, each within 30 s of the last."
        return 1
      fi
      cat ".bench/stage-$k/kinema.xz.part" >> "$xz"
    done
    echo "binary: reassembled from $n parts"
  fi
  sed 's/^/  /' "$info"
  local want got
  want=$(sed -n 's/^xz sha256: //p' "$info")
  got=$(sha256sum "$xz" | cut -c1-64)
  if [ "$want" != "$got" ]; then
    echo "binary: sha256 $got, expected $want (info.txt): corrupt or mixed parts; prepare again"
    return 1
  fi
  if command -v xz >/dev/null; then
    xz -dc "$xz" > "$WORK/kinema" || return 1
  else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      "$xz" "$WORK/kinema" || return 1
  fi
  chmod +x "$WORK/kinema"
  BIN=$WORK/kinema
  echo "binary: $BIN ($(stat -c %s "$BIN") bytes, sha256 verified)"
}

machine() {
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "kernel: $(uname -srm); CPUs: $(nproc); memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  else
    echo "nvidia-smi: not on this machine"
  fi
  local d
  for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d; do
    [ -d "$d" ] && echo "Vulkan ICDs in $d: $(find "$d" -maxdepth 1 -name '*.json' -printf '%f ' | sort)"
  done
  if [ -f "$NVIDIA_ICD" ]; then
    echo "NVIDIA ICD: $(tr -d ' \n' < "$NVIDIA_ICD" | grep -o '"api_version":"[^"]*"')"
  fi
  for v in VK_ICD_FILENAMES VK_DRIVER_FILES; do [ -n "${!v:-}" ] && echo "$v=${!v}"; done
  if command -v vulkaninfo >/dev/null; then timeout 30 vulkaninfo --summary 2>&1 | sed -n '/Devices:/,$p'; fi
  return 0
}

# `kinema probe`; sets ADAPTER and API from its "adapter: NAME (API)" line.
probe() {
  local rc
  timeout -k 5 120 "$BIN" probe --backend wgpu --repeat 3 2>&1 | tee "$WORK/probe.out"
  rc=${PIPESTATUS[0]}
  ADAPTER=$(sed -n 's/^adapter: \(.*\) (\([A-Za-z0-9]*\))$/\1/p' "$WORK/probe.out" | head -1)
  API=$(sed -n 's/^adapter: \(.*\) (\([A-Za-z0-9]*\))$/\2/p' "$WORK/probe.out" | head -1)
  [ "$rc" -eq 0 ] && [ -n "$ADAPTER" ]
}

hardware_vulkan() {
  [ "$API" = Vulkan ] && ! echo "$ADAPTER" | grep -qiE "$SOFTWARE_RE"
}

SUMMARY=()
FAILED=0
SKIPPED=0
bench() {  # bench BACKEND SECONDS STEPS REPEAT
  local label="$1, $2 s clip, $3 steps" t rc
  t=$(( $(left) - 15 ))
  if [ "$t" -lt 20 ]; then
    echo "skipped: $label (budget: $(left) s left)"
    SUMMARY+=("$label: skipped (budget)"); SKIPPED=$((SKIPPED + 1)); return
  fi
  step "bench: $label, warm-up + $4 timed (limit $t s)"
  echo "\$ kinema bench --model $MODEL --backend $1 --seconds $2 --steps $3 --repeat $4"
  timeout -k 5 "$t" "$BIN" bench --model "$BENCH_MODEL" --backend "$1" --seconds "$2" \
    --steps "$3" --repeat "$4" 2>&1 | tee "$WORK/bench.out"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 0 ]; then
    while IFS= read -r line; do SUMMARY+=("$label: $line"); done < <(grep -E '^(warm-up|run [0-9]+):' "$WORK/bench.out")
  else
    if [ "$rc" -ge 124 ]; then echo "cut at the budget (exit $rc)"; else echo "FAILED (exit $rc)"; fi
    SUMMARY+=("$label: FAILED or cut (exit $rc)"); FAILED=$((FAILED + 1))
  fi
}

main() {
  echo "Kinema GPU benchmark: tests/bench/gpu.sh $ARGS"
  echo "repository: $(git rev-parse --short HEAD 2>/dev/null || echo '(no git)'); budget $BUDGET s"
  step "machine"
  machine
  step "Vulkan loader"
  unpack_loaders || return 3
  step "binary"
  unpack_binary || return 4

  step "probe (kinema probe --backend wgpu)"
  if ! probe || ! hardware_vulkan; then
    if [ -f "$NVIDIA_ICD" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then
      echo "no hardware Vulkan adapter yet; again with the NVIDIA ICD named (device README):"
      export VK_DRIVER_FILES=$NVIDIA_ICD VK_ICD_FILENAMES=$NVIDIA_ICD __EGL_VENDOR_LIBRARY_FILENAMES=$NVIDIA_EGL
      echo "VK_DRIVER_FILES=$VK_DRIVER_FILES"
      probe
    fi
  fi
  if [ -z "$ADAPTER" ]; then
    echo "REFUSED: kinema probe found no adapter (see above); no figures were taken."
    return 3
  fi
  if ! hardware_vulkan; then
    if [ $ALLOW_SOFTWARE -eq 0 ]; then
      echo "REFUSED: the adapter is '$ADAPTER' on $API, not a hardware GPU on Vulkan; figures"
      echo "from it would not be GPU figures. (--allow-software runs anyway, for testing.)"
      return 3
    fi
    echo "NOTE: '$ADAPTER' on $API is not a hardware Vulkan GPU; running anyway (--allow-software)"
  fi

  step "model folder ($MODEL)"
  BENCH_MODEL=$WORK/model
  python3 tests/bench/bench_model.py --src "$MODEL" --out "$BENCH_MODEL" || return 5

  local s k r
  for k in $STEPS_LIST; do
    for s in $SECONDS_LIST; do
      r=$REPEAT; [ "$s" -gt 2 ] && [ "$r" -gt 2 ] && r=2
      bench wgpu "$s" "$k" "$r"
    done
  done
  if [ $CPU -eq 1 ]; then
    # the README's CPU figure was taken with these settings on a 2-core machine
    if [ "$SECONDS_LIST" = "1 2" ]; then bench cpu 1 2 1; else bench cpu 2 2 1; fi
  fi
  if command -v nvidia-smi >/dev/null; then
    step "GPU after the runs"
    nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv 2>&1
  fi

  step "summary: adapter '$ADAPTER' ($API), model $MODEL"
  printf '%s\n' "${SUMMARY[@]}"
  echo "gpu bench: ${#SUMMARY[@]} lines, $FAILED failed or cut, $SKIPPED skipped, $((SECONDS - START)) s"
  [ $FAILED -eq 0 ]
}

main 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
echo "(output in $LOG; exit $rc)"
exit "$rc"
