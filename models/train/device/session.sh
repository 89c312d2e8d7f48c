#!/usr/bin/env bash
# A whole GPU session's training as one background chain, fed and harvested by back-to-back
# device calls (run from the repository root on the GPU machine):
#   bash models/train/device/session.sh [--throughput S] [--start "AE FLOW SHORTCUT"] [--classifier MIN]
#        [--until S] [--eval S "EVAL ARGS"] [--collect "ae classifier flow shortcut"]
# --throughput S  first times each part of a step (throughput.py, cut off after S seconds) and
#           keeps its suggested per-stage settings in $RUN/throughput.env, which this and every
#           later call of the session read: stages get those settings, then the caller's
#           AE_ARGS/FLOW_ARGS/SHORTCUT_ARGS/CLASSIFIER_ARGS (later flags win). A stage that fails
#           with those suggestions runs again without them.
# --start   starts, under setsid, train.py autoencoder -> flow -> shortcut for the given minutes
#           each (0 skips a stage), unless the chain is already running. The GPU then trains
#           without a gap for as long as the machine is held, between calls too.
# --classifier  starts train_classifier.py beside it for MIN minutes (it shares the GPU).
# --until S waits until the chain and the classifier have finished or the call is S seconds old
#           (counted from CALL_T0, else from this script's start).
# --eval S  once the chain has finished, runs device/eval.sh on the run folder, cut off when the
#           call is S seconds old; its files go to runs/main/eval/ and travel in the pack.
# --collect copies each named checkpoint consistently (sha256 from its state.json; a save may
#           land mid-copy), first asking a trainer still at work on it to save now (SIGUSR1),
#           adds log.jsonl, the trainers' output and eval/, and writes one tar
#           split into <= 15 MiB parts to $OUT (the return channel takes 8 files of 16 MiB).
#           Here: bash models/train/device/restore.sh FILES_AT
set -u
cd "$(dirname "$0")/.."   # models/train
RUN=${RUN:-runs/main}
OUT=${OUT:-/tmp/out}
T0=${CALL_T0:-$(date +%s)}
WORKERS=${WORKERS:-2}   # host-side preparation is cheap (0.02 s per 32-clip batch); rendering is on the GPU
EXTRA=${TRAIN_ARGS:-}  # more train.py arguments for every stage, e.g. "--reuse 2", or --toy for a dry run
SAVE_WAIT=${SAVE_WAIT:-45}  # --collect: seconds to wait for a running trainer's requested save
mkdir -p "$RUN" "$OUT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
age() { echo $(( $(date +%s) - T0 )); }
alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
say() { printf '[session %4ds] %s\n' "$(age)" "$*"; }

THROUGHPUT= START= CLF_MIN= UNTIL= EVAL_S= EVAL_ARGS= COLLECT=
while [ $# -gt 0 ]; do
  case $1 in
    --throughput) THROUGHPUT=$2; shift 2;;
    --start) START=$2; shift 2;;
    --classifier) CLF_MIN=$2; shift 2;;
    --until) UNTIL=$2; shift 2;;
    --eval) EVAL_S=$2; EVAL_ARGS=$3; shift 3;;
    --collect) COLLECT=$2; shift 2;;
    *) echo "session.sh: unknown argument $1" >&2; exit 2;;
  esac
done

TP_ENV=$RUN/throughput.env
if [ -n "$THROUGHPUT" ]; then
  say "throughput.py for at most ${THROUGHPUT}s"
  rm -f "$TP_ENV"
  # shellcheck disable=SC2086
  timeout "$THROUGHPUT" python3 throughput.py --suggest "$TP_ENV" ${THROUGHPUT_ARGS:-} > "$RUN/throughput.out" 2>&1
  say "throughput exit $? ($([ -f "$TP_ENV" ] && echo "suggestions in $TP_ENV" || echo "no suggestions: the stages run with their defaults"))"
  cat "$RUN/throughput.out"
fi
# One stage's extra arguments: throughput.py's suggestion, then the caller's (after TRAIN_ARGS).
suggested() { [ -f "$TP_ENV" ] && ( . "$TP_ENV" >/dev/null 2>&1; printf '%s' "${!1:-}" ); }
# The shell command that runs trainer command $1 for stage $2 with its arguments from variable $3
# (AE_ARGS, ...). Where throughput.py suggested arguments, a run that fails with them runs again
# without them: its settings were measured for a step, not for a whole stage (its memory beside
# the EMA and the prefetching, say), and a lent session is too rare to lose to them.
with_fallback() {
  local sug; sug=$(suggested "$3")
  if [ -z "${sug// }" ]; then printf '%s %s' "$1" "${!3:-}"; return; fi
  printf '{ %s %s %s || { echo "== $(date +%%T) %s failed with throughput.py'"'"'s suggestions (%s): again without them"; %s %s; }; }' \
    "$1" "$sug" "${!3:-}" "$2" "$sug" "$1" "${!3:-}"
}
declare -A STAGE_VAR=([autoencoder]=AE_ARGS [flow]=FLOW_ARGS [shortcut]=SHORTCUT_ARGS)

if [ -n "$START" ]; then
  if alive chain; then
    say "chain $(cat "$RUN/chain.pid") already running"
  else
    read -r AE FLOW SC <<<"$START"
    cmd=""
    for pair in "autoencoder $AE" "flow $FLOW" "shortcut $SC"; do
      read -r stage min <<<"$pair"
      [ "$min" = 0 ] && continue
      cmd+="${cmd:+ && }echo \"== \$(date +%T) $stage $min min\" && $(with_fallback \
        "python3 train.py $stage --run $RUN --minutes $min --save-minutes 2 --workers $WORKERS $EXTRA" "$stage" \
        "${STAGE_VAR[$stage]}")"
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
    # (CLASSIFIER_ARGS="--toy" for a dry run)
    setsid nohup bash -c "$(with_fallback "python3 train_classifier.py --run $RUN --minutes $CLF_MIN --save-minutes 2" \
      classifier CLASSIFIER_ARGS)" > "$RUN/classifier.out" 2>&1 < /dev/null &
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
  if [ -f "$RUN/classifier.pid" ]; then alive classifier && say "classifier still running" || say "classifier finished"; fi
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
    tail -n 60 "$RUN/eval/eval.out"
  fi
fi

for f in chain.out classifier.out; do [ -f "$RUN/$f" ] && { echo "--- $f"; tail -n 12 "$RUN/$f"; }; done

# When the checkpoint in $RUN/$1 was written (state.json's saved_at), or 0.
saved_at() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['saved_at'])" "$RUN/$1/state.json" 2>/dev/null || echo 0; }

# A trainer still at work on $1 is asked for a checkpoint now (SIGUSR1, train_io.SaveRequests),
# so the pack holds its weights of this minute rather than of its last timed save.
fresh_save() {
  local pidf="$RUN/trainer-$1.pid" pid before waited=0
  [ -f "$pidf" ] || return 0
  pid=$(cat "$pidf")
  kill -0 "$pid" 2>/dev/null && grep -q "train" "/proc/$pid/cmdline" 2>/dev/null || return 0
  before=$(saved_at "$1")
  kill -USR1 "$pid" 2>/dev/null || return 0
  while [ "$(saved_at "$1")" = "$before" ] && kill -0 "$pid" 2>/dev/null && [ "$waited" -lt "$SAVE_WAIT" ]; do
    sleep 1; waited=$((waited + 1))
  done
  if [ "$(saved_at "$1")" != "$before" ]; then say "$1: saved on request after ${waited}s"
  else say "$1: no save within ${SAVE_WAIT}s; collecting its last timed save"; fi
}

if [ -n "$COLLECT" ]; then
  STAGE_DIR=$(mktemp -d)
  PACK=$STAGE_DIR/run  # a relative name: tar -C ignores it for an absolute $RUN
  mkdir -p "$PACK"
  for d in $COLLECT; do
    fresh_save "$d"
    for try in 1 2 3 4; do
      rm -rf "${PACK:?}/$d"
      [ -f "$RUN/$d/state.json" ] || { say "no checkpoint in $RUN/$d"; break; }
      cp -r "$RUN/$d" "$PACK/$d" 2>/dev/null
      if python3 - "$PACK/$d" <<'PY'
import hashlib, json, pathlib, sys
d = pathlib.Path(sys.argv[1]); st = json.loads((d / "state.json").read_text())
ok = all(hashlib.sha256((d / f["path"]).read_bytes()).hexdigest() == f["sha256"] for f in st["files"])
print(f"checkpoint {d.name}: {st['stage']} step {st['step']}", "ok" if ok else "TORN"); sys.exit(0 if ok else 1)
PY
      then break; fi
      sleep 3
    done
  done
  for f in log.jsonl chain.out classifier.out throughput.out throughput.env; do [ -f "$RUN/$f" ] && cp "$RUN/$f" "$PACK/"; done
  [ -d "$RUN/eval" ] && cp -r "$RUN/eval" "$PACK/"
  rm -f "$OUT"/pack.tar.part-*
  tar -C "$STAGE_DIR" -cf - run | split -b 15M -d - "$OUT/pack.tar.part-"
  rm -rf "$STAGE_DIR"
  say "packed: $(cd "$OUT" && ls -l pack.tar.part-* | awk '{s += $5} END {print NR " parts, " s " bytes"}')"
fi
