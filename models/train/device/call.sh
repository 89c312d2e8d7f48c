#!/usr/bin/env bash
# One device call (run from the repository root on the GPU machine):
#   bash models/train/device/call.sh STAGE MINUTES [trainer args...]
# STAGE: autoencoder | flow | shortcut (train.py) or classifier (train_classifier.py).
# Starts the trainer under setsid for MINUTES of training (unless a trainer is already
# running: then it only waits), waits until it exits or WAIT_S seconds pass (default 540, under
# the 10-minute command limit), then copies the stage's checkpoint and the log to $OUT. A trainer
# started here outlives the call while the machine is held, so MINUTES may span two calls made
# back to back (the machine stays warm only 30 s between calls).
set -u
STAGE=$1; MINUTES=$2; shift 2
cd "$(dirname "$0")/.."   # models/train
RUN=${RUN:-runs/main}
WAIT_S=${WAIT_S:-540}
OUT=${OUT:-/tmp/out}
mkdir -p "$RUN" "$OUT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
case $STAGE in autoencoder) DIR=ae;; flow) DIR=flow;; shortcut) DIR=shortcut;; classifier) DIR=classifier;;
  *) echo "stage?"; exit 2;; esac
# the attribute classifier (for measuring) has its own trainer; it renders on the GPU, no workers
if [ "$STAGE" = classifier ]; then CMD=(train_classifier.py); else CMD=(train.py "$STAGE" --workers 10); fi

alive() { [ -f "$RUN/trainer.pid" ] && kill -0 "$(cat "$RUN/trainer.pid")" 2>/dev/null; }
if alive; then
  echo "trainer $(cat "$RUN/trainer.pid") already running; waiting"
else
  setsid nohup python3 "${CMD[@]}" --run "$RUN" --minutes "$MINUTES" \
      --save-minutes 2 "$@" > "$RUN/trainer.out" 2>&1 < /dev/null &
  echo $! > "$RUN/trainer.pid"
  echo "started trainer $(cat "$RUN/trainer.pid"): $STAGE for $MINUTES min"
fi
t0=$(date +%s)
while alive && [ $(( $(date +%s) - t0 )) -lt "$WAIT_S" ]; do sleep 5; done
alive && echo "trainer still running (returns what is saved so far)" || echo "trainer finished"
tail -n 25 "$RUN/trainer.out"

# Copy a consistent checkpoint: save_checkpoint renames a finished folder into place, so retry
# if a save lands between listing and copying.
for try in 1 2 3; do
  rm -f "$OUT"/weights-*.safetensors "$OUT"/state.json
  [ -d "$RUN/$DIR" ] || { echo "no checkpoint yet in $RUN/$DIR"; break; }
  cp "$RUN/$DIR"/weights-*.safetensors "$RUN/$DIR"/state.json "$OUT"/ 2>/dev/null
  if python3 - "$OUT" <<'PY'
import hashlib, json, sys, pathlib
out = pathlib.Path(sys.argv[1]); st = json.loads((out / "state.json").read_text())
ok = all(hashlib.sha256((out / f["path"]).read_bytes()).hexdigest() == f["sha256"] for f in st["files"])
print("checkpoint", st["stage"], "step", st["step"], "ok" if ok else "TORN"); sys.exit(0 if ok else 1)
PY
  then break; fi
  sleep 5
done
cp "$RUN/log.jsonl" "$OUT/" 2>/dev/null
ls -la "$OUT"
