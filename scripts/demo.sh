#!/usr/bin/env bash
# Starts the whole system on the built-in demo config (config/demo.yaml):
# three sample MCP backends, the control plane, and Envoy with the shipped
# bootstrap. Prints where to point an MCP client; Ctrl-C stops everything.
#   scripts/demo.sh           # run until Ctrl-C
#   scripts/demo.sh --smoke   # start, call both services with both SDKs, stop
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SMOKE=0
[[ "${1:-}" == "--smoke" ]] && SMOKE=1

scripts/setup.sh >&2
BIN=$ROOT/target/debug
ENVOY=$(ls "$ROOT"/.venv/lib/python3*/site-packages/envoy/_bin/envoy)
RUN=$ROOT/.only1mcp/demo
mkdir -p "$RUN"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

start() { # name, command...
  local name=$1; shift
  setsid "$@" >"$RUN/$name.log" 2>&1 &
  PIDS+=($!)
}

start alpha-1 "$BIN/mcp-test-backend" --name alpha-1 --listen 127.0.0.1:9101 --control 127.0.0.1:9201
start alpha-2 "$BIN/mcp-test-backend" --name alpha-2 --listen 127.0.0.1:9102 --control 127.0.0.1:9202 --sse
start beta-1  "$BIN/mcp-test-backend" --name beta-1  --listen 127.0.0.1:9103 --control 127.0.0.1:9203 --era legacy
start control-plane "$BIN/only1mcp" serve --config "$ROOT/config/demo.yaml"
start envoy "$ENVOY" -c "$ROOT/envoy/bootstrap.yaml" --disable-hot-restart -l warning

# Ready when Envoy routes to a backend.
for _ in $(seq 1 150); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2026-07-28' \
    --data '{"jsonrpc":"2.0","id":1,"method":"server/discover"}' http://127.0.0.1:10000/mcp/alpha || true)
  [[ "$code" == 200 ]] && break
  sleep 0.2
done
if [[ "${code:-}" != 200 ]]; then
  echo "demo did not come up; logs in $RUN" >&2
  tail -n 20 "$RUN"/*.log >&2
  exit 1
fi

cat <<MSG

Only1MCP is running.
  Point an MCP client at:   http://127.0.0.1:10000/mcp/alpha   (2 instances, both protocol eras)
                            http://127.0.0.1:10000/mcp/beta    (legacy sessions only)
  Try:                      .venv/bin/python tests/py/client_modern.py http://127.0.0.1:10000/mcp/alpha 3
                            .venv-legacy/bin/python tests/py/client_legacy.py http://127.0.0.1:10000/mcp/beta 3
  Control plane status:     curl http://127.0.0.1:18001/status
  Envoy admin:              http://127.0.0.1:9901
  Edit config/demo.yaml or config/policy.yaml and the change reaches Envoy at once.
  The Only1MCP Wasm filter runs in Envoy (stats: curl -s localhost:9901/stats | grep wasmcustom).  Logs: $RUN
MSG

if [[ $SMOKE == 1 ]]; then
  "$ROOT/.venv/bin/python" tests/py/client_modern.py http://127.0.0.1:10000/mcp/alpha 2
  "$ROOT/.venv-legacy/bin/python" tests/py/client_legacy.py http://127.0.0.1:10000/mcp/beta 2
  # The Wasm filter is in the data path: its request counter moved.
  for _ in $(seq 1 20); do
    n=$(curl -s 'http://127.0.0.1:9901/stats?filter=wasmcustom.only1mcp_requests_total' | awk '{print $2}')
    [[ "${n:-0}" -gt 0 ]] && break
    sleep 0.2
  done
  if [[ "${n:-0}" -le 0 ]]; then
    echo "demo smoke test: the filter saw no requests" >&2
    echo "demo smoke test: 2 passed, 1 failed"
    exit 1
  fi
  echo "demo smoke test: 3 passed, 0 failed"
  exit 0
fi
echo "Ctrl-C to stop."
wait
