#!/usr/bin/env bash
# Runs every test: unit tests, xDS protocol tests, and end-to-end tests with
# a real Envoy, real backends and the real MCP SDK clients. Sets up first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace
# Lints are part of the build: warnings fail.
cargo clippy --workspace --all-targets -- -D warnings
# The proxy-wasm glue only exists for wasm32; lint it there too.
cargo clippy -p only1mcp-filter -p only1mcp-bare-filter --target wasm32-wasip1 -- -D warnings
# The demo must come up and serve both protocol eras.
scripts/demo.sh --smoke
