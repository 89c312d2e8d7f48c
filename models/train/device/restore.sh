#!/usr/bin/env bash
# Run HERE (not on the GPU machine) after a device call: put the returned files back into the
# run folder so the next call can carry them.
#   bash models/train/device/restore.sh FILES_AT [RUN]
set -eu
FILES=$1
cd "$(dirname "$0")/.."
RUN=${2:-runs/main}
STAGE=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['stage'])" "$FILES/state.json")
case $STAGE in autoencoder) DIR=ae;; flow) DIR=flow;; shortcut) DIR=shortcut;; classifier) DIR=classifier;; esac
mkdir -p "$RUN"
rm -rf "$RUN/$DIR.new"; mkdir "$RUN/$DIR.new"
cp "$FILES"/weights-*.safetensors "$FILES"/state.json "$RUN/$DIR.new"/
rm -rf "$RUN/$DIR"; mv "$RUN/$DIR.new" "$RUN/$DIR"
[ -f "$FILES/log.jsonl" ] && cp "$FILES/log.jsonl" "$RUN/log.jsonl"
python3 -c "
import sys; sys.path.insert(0, '.')
from train_io import load_checkpoint
sd, st = load_checkpoint('$RUN/$DIR'); print('restored', st['stage'], 'step', st['step'], len(sd), 'tensors')"
