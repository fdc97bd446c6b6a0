#!/usr/bin/env bash
# The operator's check of docker-compose.yml, on a machine with Docker:
#   bash scripts/compose-smoke.sh
# Builds and starts the stack in a scratch folder (its own .env, project name, volume and port, so a
# stack already running on this host is not touched), then checks, with a timing for each step:
#   1. up: the app becomes healthy; a session initialization is answered and stored;
#   2. restart: the app comes back healthy, the row is still there;
#   3. down + up: the data is kept (the volume outlives the containers);
#   4. another folder: the same compose file run from a folder with another name reaches the same
#      volume (the data does not depend on the folder's name);
#   5. the database is killed and started again: /readyz fails, then the app recovers by itself,
#      and it logged a few WARN/INFO lines about it and no ERROR;
#   6. down, and the volume removed.
# Uses `docker compose` when the plugin is there, else `docker-compose` (v1, Debian's docker.io).
# Env: KENAR_SMOKE_PORT (default 18080), KENAR_SMOKE_KEEP=1 keeps the stack and volume at the end,
# KENAR_SMOKE_BUILD=0 uses the image kenar-chat:latest already built (e.g. by
# `docker build --network host -t kenar-chat .` where the builder needs the host's network)
# instead of `up --build`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
port="${KENAR_SMOKE_PORT:-18080}"
volume="kenar-chat-smoke-pgdata"
project="kenar-chat-smoke"
work="$(mktemp -d /tmp/kenar-compose-smoke.XXXX)"
started=$(date +%s)

if docker compose version >/dev/null 2>&1; then
    compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose_cmd=(docker-compose)
else
    echo "neither 'docker compose' nor 'docker-compose' is installed" >&2
    exit 2
fi

step_started=$(date +%s)
say() { printf '[%4ss] %s\n' "$(($(date +%s) - started))" "$*"; }
step() {
    step_started=$(date +%s)
    say "== $*"
}
ok() { say "ok ($(($(date +%s) - step_started)) s): $*"; }
fail() {
    say "FAILED: $*"
    stack logs --tail 50 app >&2 || true
    exit 1
}

# Compose in `dir`, as project `project` (a second, differently named folder uses no -p: the
# folder's own name is then the project, which is the point of step 4).
in_dir() {
    local dir="$1"
    shift
    (cd "${dir}" && "${compose_cmd[@]}" "$@")
}
stack() { in_dir "${work}/stack" -p "${project}" "$@"; }

cleanup() {
    if [[ "${KENAR_SMOKE_KEEP:-0}" != 1 ]]; then
        stack down -v --remove-orphans >/dev/null 2>&1 || true
        in_dir "${work}/other-folder" down --remove-orphans >/dev/null 2>&1 || true
        docker volume rm "${volume}" >/dev/null 2>&1 || true
        rm -rf "${work}"
    fi
}
trap cleanup EXIT

# The scratch stack: this checkout's compose file, a build context pointing back here.
mkdir -p "${work}/stack" "${work}/other-folder"
sed "s#^    build: \.#    build: ${root}#" "${root}/docker-compose.yml" >"${work}/stack/docker-compose.yml"
cp "${work}/stack/docker-compose.yml" "${work}/other-folder/docker-compose.yml"
identification_key="smoke-identification-key-$(openssl rand -hex 8)"
cat >"${work}/stack/.env" <<EOF
KENAR_APP_SLUG=smoke-app
KENAR_API_KEY=smoke-api-key-$(openssl rand -hex 8)
KENAR_OAUTH_SECRET=smoke-oauth-secret-$(openssl rand -hex 8)
DIVAR_IDENTIFICATION_KEY=${identification_key}
APP_BASE_URL=http://127.0.0.1:${port}
KENAR_OPERATOR_NAME=compose smoke test
KENAR_PRIVACY_CONTACT=smoke@example.com
TOKEN_ENCRYPTION_KEY=$(openssl rand -base64 32)
POSTGRES_PASSWORD=$(openssl rand -hex 16)
KENAR_COMPOSE_VOLUME=${volume}
KENAR_COMPOSE_PORT=${port}
EOF
cp "${work}/stack/.env" "${work}/other-folder/.env"

base="http://127.0.0.1:${port}"
ready() { curl -fs -o /dev/null --max-time 5 "${base}/readyz"; }
# The app container's log since a time (`docker logs`: docker-compose v1's `logs` has no --since).
app_log_since() { docker logs --since "$1" "$(stack ps -q app)" 2>&1; }
wait_ready() {
    local limit="$1"
    for _ in $(seq 1 "${limit}"); do
        ready && return 0
        sleep 1
    done
    return 1
}
rows() {
    stack exec -T db psql -U kenar -d kenar -tAc "select count(*) from conversations" | tr -d '[:space:]'
}
session_init() {
    local conversation="$1"
    curl -fsS --max-time 10 -X POST "${base}/divar/session-init" \
        -H "Authorization: ${identification_key}" -H 'API-Version: 2' \
        -H 'Content-Type: application/json' \
        -d "{\"source\":\"CHAT\",\"post_token\":\"gZd7omnS\",\"conversation_id\":\"${conversation}\",\"user_side\":\"DEMAND\",\"extra_data\":{},\"user_id\":\"u-smoke\"}"
}

say "compose: ${compose_cmd[*]} ($("${compose_cmd[@]}" version --short 2>/dev/null || "${compose_cmd[@]}" version | head -n 1))"
step "1. up --build (project ${project}, volume ${volume}, port ${port})"
build=(--build)
[[ "${KENAR_SMOKE_BUILD:-1}" == 0 ]] && build=()
stack up -d "${build[@]}" >"${work}/build.log" 2>&1 || {
    tail -n 40 "${work}/build.log"
    fail "up"
}
wait_ready 120 || fail "the app did not become ready"
answer="$(session_init c0ffee00-0000-4000-8000-00000000a001)" || fail "session-init"
grep -q '"url"' <<<"${answer}" || fail "session-init answered ${answer}"
[[ "$(rows)" == 1 ]] || fail "the session initialization was not stored"
ok "healthy; session-init answered and stored (1 row)"
stack logs app | grep -q 'database ready' || fail "no 'database ready' line at start"
say "start line: $(stack logs --no-color app | grep -o '"message":"database ready[^"]*"' | head -n 1)"

step "2. restart"
stack restart app >/dev/null 2>&1
wait_ready 60 || fail "not ready after restart"
[[ "$(rows)" == 1 ]] || fail "the row is gone after restart"
ok "ready again; the row is still there"

step "3. down, then up"
stack down >/dev/null 2>&1
stack up -d >/dev/null 2>&1
wait_ready 90 || fail "not ready after down + up"
[[ "$(rows)" == 1 ]] || fail "the data is gone after down + up"
ok "the data was kept"

step "4. the same file from a folder with another name (no -p)"
stack down >/dev/null 2>&1
in_dir "${work}/other-folder" up -d db >/dev/null 2>&1
for _ in $(seq 1 60); do
    in_dir "${work}/other-folder" exec -T db pg_isready -U kenar -d kenar >/dev/null 2>&1 && break
    sleep 1
done
other_rows="$(in_dir "${work}/other-folder" exec -T db psql -U kenar -d kenar -tAc "select count(*) from conversations" | tr -d '[:space:]')"
in_dir "${work}/other-folder" down >/dev/null 2>&1
[[ "${other_rows}" == 1 ]] || fail "another folder found ${other_rows:-no} rows: a new, empty database"
stack up -d >/dev/null 2>&1
wait_ready 90 || fail "not ready after coming back"
ok "another folder reached the same volume (1 row)"

step "5. the database is killed, then started"
sleep 2 # `--since` counts whole seconds: leave the start lines out
since="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
stack kill db >/dev/null 2>&1
down_at=$(date +%s)
failed_ready=0
for _ in $(seq 1 20); do
    ready || failed_ready=$((failed_ready + 1))
    sleep 1
done
[[ ${failed_ready} -ge 15 ]] || fail "/readyz kept answering 200 with the database down (${failed_ready}/20 failed)"
log_down="$(app_log_since "${since}" | grep '"level"' || true)"
lines_down="$(grep -c . <<<"${log_down}" || true)"
stack start db >/dev/null 2>&1
up_at=$(date +%s)
wait_ready 60 || fail "the app did not recover"
recovered=$(($(date +%s) - up_at))
session_init c0ffee00-0000-4000-8000-00000000a002 >/dev/null || fail "session-init after the outage"
[[ "$(rows)" == 2 ]] || fail "the row written after the outage is missing"
outage_log="$(app_log_since "${since}")"
errors="$(grep -c '"level":"ERROR"' <<<"${outage_log}" || true)"
[[ "${errors}" == 0 ]] || fail "${errors} ERROR lines during the outage"
grep -q 'reachable again' <<<"${outage_log}" || fail "no line says the database is back"
ok "down $((up_at - down_at)) s: /readyz failed ${failed_ready}/20 probes, ${lines_down} log lines while down, 0 ERROR; ready ${recovered} s after the database started; session-init works again"
say "the ${lines_down} lines logged while the database was down:"
sed 's/^/    /' <<<"${log_down}" | cut -c1-200
say "and the line when it was back:"
grep '"reachable again' <<<"${outage_log}" | sed 's/^/    /' | cut -c1-200

step "6. down"
stack down >/dev/null 2>&1
ok "stopped"
say "all passed in $(($(date +%s) - started)) s"
