#!/usr/bin/env bash
# Every test: formatting, the native Rust tests, the web build, and the headless-browser suite in
# real Chromium with WebGPU. Installs what is missing first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }
SECONDS=0

step "set-up"
web/tools/setup.sh --test

step "rustfmt and clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "native tests (cargo test)"
cargo test --workspace --locked

step "training pipeline tests (PyTorch on CPU: world, model mirror, toy training, export)"
if ! python3 -c "import torch, safetensors, numpy, pytest, tokenizers, sentence_transformers" 2>/dev/null; then
  echo "installing models/train/requirements.txt (torch is a large download the first time)"
  python3 -m pip install --quiet -r models/train/requirements.txt
fi
(cd models/train && python3 -m pytest -q)

step "GPU benchmark scripts (no GPU needed: sizes, staging, adapter checks)"
bash tests/bench/gpu-scripts.test.sh

step "web build"
web/tools/build.sh

step "browser tests (headless Chromium, WebGPU on SwiftShader)"
(cd tests && node --test --test-concurrency=1 browser/)

step "all tests passed in ${SECONDS} s"
