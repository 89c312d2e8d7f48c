#!/usr/bin/env bash
# Measure a model on the GPU machine (run from the repository root); results go to $OUT:
#   bash models/train/device/eval.sh [MODEL] [evaluate.py args, e.g. --in-dist 60 --steps 4]
# MODEL: a model folder, or the run folder (default runs/main: its latest DiT stage, assembled as
# export does; then the text shards models/kinema-tiny/text-* and runs/main/ae must be there).
# Needs the classifier in runs/main/classifier (call.sh classifier, or carry it: 5.3 MB), or in
# the checkpoint or run folder $CLF names.
# Writes prompts.jsonl, reference.json (rendered clips: the classifier's ceiling), eval.json
# (generated clips), samples.png + samples.json (strip for the model card), eval.out (the tables),
# and, where MODEL is a run folder (its encoder is there), dit-error.json: how far the DiT's latents
# land from the encoder's (measure/dit_error.py) on the same prompts' first DIT_ERROR_SECONDS
# (4: the length the DiT trains on), at 4 steps, sampled from noise too. Last, as a call's time
# limit may cut it off.
set -u
cd "$(dirname "$0")/.."   # models/train
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
MODEL=${1:-runs/main}; shift || true
CLF=${CLF:-runs/main}
export PYTHONUNBUFFERED=1
{
  python3 evaluate.py --write-prompts "$OUT/prompts.jsonl" "$@"
  python3 evaluate.py --reference --classifier "$CLF" --prompts "$OUT/prompts.jsonl" --json "$OUT/reference.json" "$@"
  python3 evaluate.py --model "$MODEL" --classifier "$CLF" --prompts "$OUT/prompts.jsonl" --json "$OUT/eval.json" "$@"
  python3 strip.py --model "$MODEL" --out "$OUT/samples.png"
  if [ -d "$MODEL/ae" ]; then
    python3 -m measure.dit_error --run "$MODEL" --prompts "$OUT/prompts.jsonl" --classifier "$CLF" --steps 4 \
      --seconds "${DIT_ERROR_SECONDS:-4}" --sample --batch 8 --json "$OUT/dit-error.json"
  fi
} 2>&1 | tee "$OUT/eval.out"
