#!/usr/bin/env bash
# Run HERE (not on the GPU machine) after a device call: put the returned files back into the
# run folder so the next call can carry them, and check every checkpoint's sha256.
#   bash models/train/device/restore.sh FILES_AT [RUN]
# FILES_AT holds either session.sh's pack (pack.tar.part-NN: checkpoints, logs, eval/) or
# call.sh's loose files (weights-*.safetensors + state.json [+ log.jsonl]).
set -eu
FILES=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
RUN=${2:-runs/main}
verify() {
  python3 -c "
import sys; sys.path.insert(0, '.')
from train_io import load_checkpoint
sd, st = load_checkpoint('$1'); print('restored', '$1', st['stage'], 'step', st['step'], len(sd), 'tensors')"
}
if compgen -G "$FILES/pack.tar.part-*" > /dev/null; then
  # the pack's paths are run/... (runs/main/... in older packs); unpack beside, then move each part into $RUN
  TMP=$(mktemp -d)
  cat "$FILES"/pack.tar.part-* | tar -x -C "$TMP"
  # the run folder: the parent of the checkpoint folders (each has a state.json), else the log's
  ST=$(find "$TMP" -name state.json | head -1)
  if [ -n "$ST" ]; then SRC=$(dirname "$(dirname "$ST")"); else SRC=$(dirname "$(find "$TMP" -name log.jsonl | head -1)"); fi
  mkdir -p "$RUN"
  for d in "$SRC"/*; do
    name=$(basename "$d")
    if [ -d "$d" ]; then
      rm -rf "${RUN:?}/$name"; mv "$d" "$RUN/$name"
      [ -f "$RUN/$name/state.json" ] && verify "$RUN/$name"
    else
      mv "$d" "$RUN/$name"
    fi
  done
  rm -rf "$TMP"
  ls -la "$RUN"
  exit 0
fi
STAGE=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['stage'])" "$FILES/state.json")
case $STAGE in autoencoder) DIR=ae;; flow) DIR=flow;; shortcut) DIR=shortcut;; classifier) DIR=classifier;; esac
mkdir -p "$RUN"
rm -rf "$RUN/$DIR.new"; mkdir "$RUN/$DIR.new"
cp "$FILES"/weights-*.safetensors "$FILES"/state.json "$RUN/$DIR.new"/
rm -rf "$RUN/$DIR"; mv "$RUN/$DIR.new" "$RUN/$DIR"
[ -f "$FILES/log.jsonl" ] && cp "$FILES/log.jsonl" "$RUN/log.jsonl"
verify "$RUN/$DIR"
