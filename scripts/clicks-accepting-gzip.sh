#!/usr/bin/env bash
# Session initialization from a client that accepts gzip, as Go's and Python's HTTP clients do by
# default: 10 s of `wrk -t2 -c64` against a fresh `serve` on a fresh PostgreSQL database, every
# request a new conversation. Prints the answer's Content-Encoding, req/s and the server's CPU
# time per request (from /proc). Needs wrk, curl, psql.
#   scripts/clicks-accepting-gzip.sh target/release/kenar-chat [postgres://postgres@127.0.0.1:5432]
set -euo pipefail
bin=$(realpath "$1"); pg=${2:-postgres://postgres@127.0.0.1:5432}
key=bench-identification-key-0123456789; port=18081; base=http://127.0.0.1:$port
psql "$pg/postgres" -v ON_ERROR_STOP=1 -qc 'drop database if exists kenar_gzip with (force)' -c 'create database kenar_gzip' 2>/dev/null
dir=$(mktemp -d); cd "$dir"
cat > clicks.lua <<LUA
local n, headers = 0, {}
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function init(args)
  headers["Authorization"] = "$key"
  headers["API-Version"] = "2"
  headers["Content-Type"] = "application/json"
  headers["Accept-Encoding"] = "gzip"
end
function request()
  n = n + 1
  local body = string.format('{"source":"CHAT_MESSAGE_ACTION","post_token":"gZd7omnS","conversation_id":"c-%d-%d","user_side":"Demand","extra_data":{"k":"v"},"user_id":"u-bench"}', tid, n)
  return wrk.format("POST", "/divar/session-init", headers, body)
end
LUA
KENAR_APP_SLUG=bench-app KENAR_API_KEY=k KENAR_OAUTH_SECRET=s DIVAR_IDENTIFICATION_KEY=$key \
  APP_BASE_URL=$base BIND_ADDR=127.0.0.1:$port TOKEN_ENCRYPTION_KEYS=$(head -c32 /dev/urandom | base64) \
  DATABASE_URL="$pg/kenar_gzip" DATABASE_MAX_CONNECTIONS=10 RUST_LOG=warn "$bin" serve >serve.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.2; done
encoding=$(curl -s -o /dev/null -D - -X POST -H "Authorization: $key" -H 'API-Version: 2' \
  -H 'Content-Type: application/json' -H 'Accept-Encoding: gzip' \
  -d '{"source":"CHAT_MESSAGE_ACTION","post_token":"gZd7omnS","conversation_id":"probe","user_side":"Demand","user_id":"u-bench"}' \
  "$base/divar/session-init" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-encoding"{print $2}')
ticks() { awk '{print $14 + $15}' /proc/$server/stat; }
before=$(ticks)
out=$(wrk -t2 -c64 -d10s -s clicks.lua "$base")
after=$(ticks)
requests=$(echo "$out" | awk '/requests in/{print $1}')
echo "answer: ${encoding:-plain}; $(echo "$out" | awk '/Requests\/sec/{print $2}') req/s;" \
  "server CPU $(( (after - before) * 1000000 / $(getconf CLK_TCK) / requests )) µs per request;" \
  "$(echo "$out" | grep -c 'Non-2xx' || true) lines of non-2xx"
