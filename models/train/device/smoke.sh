#!/usr/bin/env bash
# First command of a GPU session (~3-4 min, plus an estimated 1-2 for the measuring lines): versions,
# renderer speed on the GPU, and a short real-scale run of each stage (and of the attribute
# classifier and the eval) in a scratch run folder, so throughput is measured, not guessed.
#   bash models/train/device/smoke.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, numpy, safetensors, tokenizers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
for f in 64 240; do python3 -m world.preview --bench --device cuda --clips 32 --frames $f --threads 4 | head -1; done
python3 -m world.preview --bench --device cuda --clips 32 --frames 64 --threads 4 | head -1   # warm
S=/tmp/smoke; rm -rf $S
python3 train.py autoencoder --run $S --steps 60 --log-every 20 --workers 10 2>&1 | tail -4
python3 train.py flow --run $S --steps 60 --log-every 20 --workers 10 2>&1 | tail -4
python3 train.py flow --run $S --steps 40 --log-every 20 --workers 10 --compile 2>&1 | tail -3
python3 train.py shortcut --run $S --steps 40 --log-every 20 --workers 10 2>&1 | tail -3
# measuring: classifier steps/s at full size, then an 8-clip, 15 s eval of the scratch run (its
# clips/s and the classifier's read speed: what device/README.md's eval estimates wait for)
python3 train_classifier.py --run $S --steps 60 --log-every 20 2>&1 | tail -3
python3 evaluate.py --model $S --classifier $S --in-dist 8 --per-heldout 0 --seconds 15 --json $S/eval_smoke.json 2>&1 | tail -4
python3 -c "import torch; print('peak GPU memory (last process) n/a; see nvidia-smi')"
cp $S/log.jsonl "$OUT/smoke_log.jsonl"
cp $S/eval_smoke.json "$OUT/" 2>/dev/null
