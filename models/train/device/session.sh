#!/usr/bin/env bash
# A whole GPU session's training as one background chain, fed and harvested by back-to-back
# device calls (run from the repository root on the GPU machine):
#   bash models/train/device/session.sh [--start "AE FLOW SHORTCUT"] [--classifier MIN]
#        [--until S] [--eval S "EVAL ARGS"] [--collect "ae classifier flow shortcut"]
# --start   starts, under setsid, train.py autoencoder -> flow -> shortcut for the given minutes
#           each (0 skips a stage), unless the chain is already running. The GPU then trains
#           without a gap for as long as the machine is held, between calls too.
# --classifier  starts train_classifier.py beside it for MIN minutes (it shares the GPU).
# --until S waits until the chain and the classifier have finished or the call is S seconds old
#           (counted from CALL_T0, else from this script's start).
# --eval S  once the chain has finished, runs device/eval.sh on the run folder, cut off when the
#           call is S seconds old; its files go to runs/main/eval/ and travel in the pack.
# --collect copies each named checkpoint consistently (sha256 from its state.json; a save may
#           land mid-copy), adds log.jsonl, the trainers' output and eval/, and writes one tar
#           split into <= 15 MiB parts to $OUT (the return channel takes 8 files of 16 MiB).
#           Here: bash models/train/device/restore.sh FILES_AT
set -u
cd "$(dirname "$0")/.."   # models/train
RUN=${RUN:-runs/main}
OUT=${OUT:-/tmp/out}
T0=${CALL_T0:-$(date +%s)}
WORKERS=${WORKERS:-2}   # host-side preparation is cheap (0.02 s per 32-clip batch); rendering is on the GPU
EXTRA=${TRAIN_ARGS:-}  # more train.py arguments for every stage, e.g. "--reuse 2", or --toy for a dry run
# and for one stage only, after TRAIN_ARGS (throughput.py tells which settings pay on the machine)
declare -A STAGE_EXTRA=([autoencoder]=${AE_ARGS:-} [flow]=${FLOW_ARGS:-} [shortcut]=${SHORTCUT_ARGS:-})
CEXTRA=${CLASSIFIER_ARGS:-}  # more train_classifier.py arguments (--toy for a dry run)
mkdir -p "$RUN" "$OUT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
age() { echo $(( $(date +%s) - T0 )); }
alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
say() { printf '[session %4ds] %s\n' "$(age)" "$*"; }

START= CLF_MIN= UNTIL= EVAL_S= EVAL_ARGS= COLLECT=
while [ $# -gt 0 ]; do
  case $1 in
    --start) START=$2; shift 2;;
    --classifier) CLF_MIN=$2; shift 2;;
    --until) UNTIL=$2; shift 2;;
    --eval) EVAL_S=$2; EVAL_ARGS=$3; shift 3;;
    --collect) COLLECT=$2; shift 2;;
    *) echo "session.sh: unknown argument $1" >&2; exit 2;;
  esac
done

if [ -n "$START" ]; then
  if alive chain; then
    say "chain $(cat "$RUN/chain.pid") already running"
  else
    read -r AE FLOW SC <<<"$START"
    cmd=""
    for pair in "autoencoder $AE" "flow $FLOW" "shortcut $SC"; do
      read -r stage min <<<"$pair"
      [ "$min" = 0 ] && continue
      cmd+="${cmd:+ && }echo \"== \$(date +%T) $stage $min min\" && python3 train.py $stage --run $RUN --minutes $min --save-minutes 2 --workers $WORKERS $EXTRA ${STAGE_EXTRA[$stage]}"
    done
    setsid nohup bash -c "$cmd" > "$RUN/chain.out" 2>&1 < /dev/null &
    echo $! > "$RUN/chain.pid"
    say "started chain $(cat "$RUN/chain.pid"): autoencoder $AE, flow $FLOW, shortcut $SC min"
  fi
fi

if [ -n "$CLF_MIN" ]; then
  if alive classifier; then
    say "classifier already running"
  else
    setsid nohup python3 train_classifier.py --run "$RUN" --minutes "$CLF_MIN" --save-minutes 2 $CEXTRA \
      > "$RUN/classifier.out" 2>&1 < /dev/null &
    echo $! > "$RUN/classifier.pid"
    say "started classifier $(cat "$RUN/classifier.pid") for $CLF_MIN min"
  fi
fi

if [ -n "$UNTIL" ]; then
  n=0
  while { alive chain || alive classifier; } && [ "$(age)" -lt "$UNTIL" ]; do
    sleep 5; n=$((n + 1))
    if [ $((n % 12)) = 0 ]; then
      say "gpu $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)"
      say "$(tail -n 1 "$RUN/chain.out" 2>/dev/null | cut -c1-240)"
    fi
  done
  alive chain && say "chain still running" || say "chain finished"
  alive classifier && say "classifier still running" || say "classifier finished"
fi

if [ -n "$EVAL_S" ]; then
  while alive chain && [ "$(age)" -lt "$EVAL_S" ]; do sleep 5; done
  left=$(( EVAL_S - $(age) ))
  if alive chain || [ "$left" -lt 30 ]; then
    say "no eval: chain running or only ${left}s left"
  else
    say "eval for at most ${left}s: $EVAL_ARGS"
    rm -rf "$RUN/eval"; mkdir -p "$RUN/eval"
    # shellcheck disable=SC2086
    CLF=$RUN OUT=$RUN/eval timeout "$left" bash device/eval.sh "$RUN" $EVAL_ARGS > /dev/null 2>&1
    say "eval exit $? ($(ls "$RUN/eval" | tr '\n' ' '))"
    tail -n 40 "$RUN/eval/eval.out"
  fi
fi

for f in chain.out classifier.out; do [ -f "$RUN/$f" ] && { echo "--- $f"; tail -n 12 "$RUN/$f"; }; done

if [ -n "$COLLECT" ]; then
  STAGE_DIR=$(mktemp -d)
  mkdir -p "$STAGE_DIR/$RUN"
  for d in $COLLECT; do
    for try in 1 2 3 4; do
      rm -rf "${STAGE_DIR:?}/$RUN/$d"
      [ -f "$RUN/$d/state.json" ] || { say "no checkpoint in $RUN/$d"; break; }
      cp -r "$RUN/$d" "$STAGE_DIR/$RUN/$d" 2>/dev/null
      if python3 - "$STAGE_DIR/$RUN/$d" <<'PY'
import hashlib, json, pathlib, sys
d = pathlib.Path(sys.argv[1]); st = json.loads((d / "state.json").read_text())
ok = all(hashlib.sha256((d / f["path"]).read_bytes()).hexdigest() == f["sha256"] for f in st["files"])
print(f"checkpoint {d.name}: {st['stage']} step {st['step']}", "ok" if ok else "TORN"); sys.exit(0 if ok else 1)
PY
      then break; fi
      sleep 3
    done
  done
  for f in log.jsonl chain.out classifier.out; do [ -f "$RUN/$f" ] && cp "$RUN/$f" "$STAGE_DIR/$RUN/"; done
  [ -d "$RUN/eval" ] && cp -r "$RUN/eval" "$STAGE_DIR/$RUN/"
  rm -f "$OUT"/pack.tar.part-*
  tar -C "$STAGE_DIR" -cf - "$RUN" | split -b 15M -d - "$OUT/pack.tar.part-"
  rm -rf "$STAGE_DIR"
  say "packed: $(cd "$OUT" && ls -l pack.tar.part-* | awk '{s += $5} END {print NR " parts, " s " bytes"}')"
fi
