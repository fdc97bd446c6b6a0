#!/usr/bin/env bash
# Runs addon.py against a kenar-sandbox binary and checks the whole flow (check.py).
# Usage: bash examples/python/run.sh [path/to/kenar-sandbox]   (default: target/debug/kenar-sandbox)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sandbox_bin="$(realpath "${1:-${here}/../../target/debug/kenar-sandbox}")"
cd "${here}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
sandbox_port="$(free_port)"
addon_port="$(free_port)"
log="$(mktemp -d)"
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
pids=()
trap cleanup EXIT

"${sandbox_bin}" --bind "127.0.0.1:${sandbox_port}" --addon-url "http://127.0.0.1:${addon_port}" >"${log}/sandbox.out" 2>&1 &
pids+=($!)
sandbox="http://127.0.0.1:${sandbox_port}/sandbox"
fetch() { python3 -c 'import sys, urllib.request as u; sys.stdout.write(u.urlopen(sys.argv[1]).read().decode())' "$1"; }
for _ in $(seq 50); do fetch "${sandbox}/_inspect/app" >"${log}/app.json" 2>/dev/null && break; sleep 0.2; done
cat "${log}/sandbox.out"
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "${log}/app.json" "$1"; }

ADDON_URL="http://127.0.0.1:${addon_port}" DIVAR_URL="${sandbox}" APP_SLUG="$(field slug)" \
API_KEY="$(field api_key)" OAUTH_SECRET="$(field oauth_secret)" IDENTIFICATION_KEY="$(field identification_key)" \
    python3 addon.py >"${log}/addon.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do (echo >"/dev/tcp/127.0.0.1/${addon_port}") 2>/dev/null && break; sleep 0.2; done

if ! python3 check.py "${sandbox}"; then
    echo "--- addon.py output:"; cat "${log}/addon.out"
    exit 1
fi
