#!/usr/bin/env bash
# Builds the wasm package (pkg/) from crate/ with the settings in wasm-pack.toml:
# cargo (wasm32) → wasm-bindgen (ES module + .d.ts) → wasm-opt. Run web/tools/setup.sh first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
say() { printf '\033[1m[build]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[build] error:\033[0m %s\n' "$*" >&2; exit 1; }

# wasm-pack.toml → shell variables (python3's tomllib is the TOML parser every machine here has).
eval "$(python3 - <<'PY'
import shlex, tomllib
with open("wasm-pack.toml", "rb") as f:
    s = tomllib.load(f)
p, prof = s["package"], s["profile"]
for key, value in [("CRATE", p["crate"]), ("OUT_NAME", p["out-name"]), ("OUT_DIR", p["out-dir"]),
                   ("BINDGEN_TARGET", p["bindgen-target"]), ("PROFILE", prof["cargo-profile"])]:
    print(f"{key}={shlex.quote(value)}")
print("WASM_OPT_ARGS=(" + " ".join(shlex.quote(a) for a in prof["wasm-opt"]) + ")")
PY
)"

TARGET=wasm32-unknown-unknown
CARGO=(cargo)
# KINEMA_WASM_TOOLCHAIN=debian forces the fallback (to test it where rustup works too).
CHOICE="${KINEMA_WASM_TOOLCHAIN:-auto}"
[[ "$CHOICE" =~ ^(auto|rustup|debian)$ ]] || die "KINEMA_WASM_TOOLCHAIN must be auto, rustup or debian, not '$CHOICE'"
if [[ "$CHOICE" != debian ]] && rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
  say "toolchain: rustup $(rustc --version | awk '{print $2}') with its wasm32 std"
elif [[ "$CHOICE" != rustup && -x /usr/bin/cargo && -d /usr/lib/rustlib/src/rust/library ]] && command -v wasm-ld-22 >/dev/null; then
  # Debian's rustc-web: compile std for wasm from the shipped sources (about a minute extra).
  say "toolchain: Debian $(/usr/bin/rustc --version | awk '{print $2}') with -Z build-std"
  export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-22
  CARGO=(/usr/bin/cargo -Z build-std=std,panic_abort)
else
  die "no wasm32 standard library: run web/tools/setup.sh"
fi

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
say "cargo build -p $CRATE --target $TARGET --profile $PROFILE (target dir $TARGET_DIR)"
"${CARGO[@]}" build -p "$CRATE" --lib --target "$TARGET" --profile "$PROFILE"
WASM="$TARGET_DIR/$TARGET/$PROFILE/$CRATE.wasm"
[[ -f "$WASM" ]] || die "cargo produced no $WASM"

command -v wasm-bindgen >/dev/null || die "wasm-bindgen is missing: run web/tools/setup.sh"
rm -rf "${OUT_DIR:?}.tmp" && mkdir -p "$OUT_DIR.tmp"
say "wasm-bindgen --target $BINDGEN_TARGET"
wasm-bindgen --target "$BINDGEN_TARGET" --out-dir "$OUT_DIR.tmp" --out-name "$OUT_NAME" "$WASM"

WASM_OPT="$ROOT/web/node_modules/.bin/wasm-opt"
[[ -x "$WASM_OPT" ]] || die "wasm-opt is missing: run web/tools/setup.sh"
say "wasm-opt ${WASM_OPT_ARGS[*]}"
"$WASM_OPT" "${WASM_OPT_ARGS[@]}" "$OUT_DIR.tmp/${OUT_NAME}_bg.wasm" -o "$OUT_DIR.tmp/${OUT_NAME}_bg.wasm"

# Swap in the new package whole, so a server never serves JS and wasm from two different builds.
rm -rf "$OUT_DIR" && mv "$OUT_DIR.tmp" "$OUT_DIR"
"$ROOT/web/tools/size.sh"
