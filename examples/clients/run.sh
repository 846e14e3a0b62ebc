#!/usr/bin/env bash
# examples/clients/run.sh: the example clients (a voice agent plus a live-transcript follower, in
# TypeScript and in Python) against the real service binary, SESSION_SERVICE_BIN (required).
#
# It compiles typescript/ with tsc (typescript and @types/node pinned in package.json +
# package-lock.json, `npm ci` into the git-ignored node_modules when they are missing or not the
# pinned versions; output in the git-ignored dist/), starts the service on a free loopback port
# (PORT=0, read back from its "listening" log line) with a throwaway SQLite database in a temporary
# folder and two API keys, a write key for the agents and a read key for their transcript
# followers, plus a low rate limit (2/s, bursts of 6) so that the agents' retry helpers meet real
# 429 rate_limited answers. It waits for /ready, runs the TypeScript example, then the Python one
# (standard library only), stops the service and removes the folder. Last line:
# `examples: N passed, N failed`; the exit status is 0 only if none failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { printf '[examples] %s\n' "$*" >&2; }
example_timeout=120 # seconds for one example, at most

if [ -z "${SESSION_SERVICE_BIN:-}" ] || [ ! -x "$SESSION_SERVICE_BIN" ]; then
    log "FAILED: SESSION_SERVICE_BIN must name the built session-service binary (e.g. target/debug/session-service)"
    exit 1
fi
npm_how="cd examples/clients/typescript && npm ci --ignore-scripts (Debian: apt-get install nodejs npm first)"
for tool in node npm python3; do
    command -v "$tool" >/dev/null || { log "FAILED: no $tool on PATH (Debian: apt-get install nodejs npm python3)"; exit 1; }
done

# The TypeScript compiler and Node's types, exactly as pinned.
ts="$here/typescript"
export NO_UPDATE_NOTIFIER=1
pinned() { node -p 'require(process.argv[1]).devDependencies[process.argv[2]]' "$ts/package.json" "$1"; }
installed() {
    local name
    for name in typescript @types/node; do
        [ "$(node -p 'require(process.argv[1]).version' "$ts/node_modules/$name/package.json" 2>/dev/null)" = "$(pinned "$name")" ] ||
            return 1
    done
}
if ! installed; then
    log "installing typescript@$(pinned typescript) and @types/node@$(pinned @types/node) into examples/clients/typescript/node_modules (npm ci)"
    (cd "$ts" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2 ||
        { log "FAILED: npm ci failed; run: $npm_how"; exit 1; }
    installed || { log "FAILED: the pinned versions are still not installed; run: $npm_how"; exit 1; }
fi
log "compiling typescript/*.ts (tsc --strict, into typescript/dist)"
rm -rf "$ts/dist"
(cd "$ts" && node node_modules/typescript/bin/tsc -p tsconfig.json) || { log "FAILED: tsc reported errors"; exit 1; }

# The service: a temporary folder, cleaned up however this script ends.
work=$(mktemp -d "${TMPDIR:-/tmp}/session-examples.XXXXXX")
service_pid=""
stop_service() {
    [ -n "$service_pid" ] || return 0
    if kill -0 "$service_pid" 2>/dev/null; then
        kill -TERM "$service_pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do
            kill -0 "$service_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$service_pid" 2>/dev/null || true
    fi
    wait "$service_pid" 2>/dev/null || true
    service_pid=""
}
cleanup() {
    stop_service
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

random_key() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
write_key="example-agent-$(random_key)"
read_key="example-viewer-$(random_key)"

# The log exists before the service opens it: the loop below reads it at once (under pipefail,
# a read of a file not yet there ended this script when the machine was busy).
: >"$work/service.log"
# A clean environment: nothing of the caller's (DATABASE_URL, API_KEYS_FILE, …) reaches it.
env -i PATH="$PATH" \
    HOST=127.0.0.1 PORT=0 \
    DATABASE_URL="sqlite://$work/sessions.db" \
    LOG_FORMAT=json RUST_LOG=session_service=info \
    API_KEYS="write:$write_key,read:$read_key" \
    RATE_LIMIT_PER_SECOND=2 RATE_LIMIT_BURST=6 \
    "$SESSION_SERVICE_BIN" >"$work/service.log" 2>&1 &
service_pid=$!

service_log_tail() { log "the service's log (last lines):"; tail -n 20 "$work/service.log" >&2 || true; }
address=""
for ((i = 0; i < 200; i++)); do
    address=$(sed -n 's/.*"message":"listening".*"address":"\([^"]*\)".*/\1/p' "$work/service.log" | head -n 1)
    [ -n "$address" ] && break
    kill -0 "$service_pid" 2>/dev/null || { log "FAILED: the service exited before listening"; service_log_tail; exit 1; }
    sleep 0.1
done
[ -n "$address" ] || { log "FAILED: the service did not listen within 20 s"; service_log_tail; exit 1; }
case "$address" in
    127.0.0.1:*) ;;
    *) log "FAILED: the service listens on $address, not on 127.0.0.1"; exit 1 ;;
esac
base="http://$address"

# /ready: storage answers (never needs a key, never rate limited).
ready() {
    python3 - "$base/ready" <<'PY'
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(sys.argv[1], timeout=2) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}
for ((i = 0; i < 100; i++)); do
    ready && break
    kill -0 "$service_pid" 2>/dev/null || { log "FAILED: the service exited before it was ready"; service_log_tail; exit 1; }
    sleep 0.2
done
ready || { log "FAILED: $base/ready did not answer 200 within 20 s"; service_log_tail; exit 1; }
log "service on $base (pid $service_pid), SQLite in $work, a write key and a read key, at most 2 requests/s per key (bursts of 6)"

passed=0
failed=0
run_example() {
    local name=$1
    shift
    log "--- $name: $*"
    local status=0
    env SESSION_SERVICE_URL="$base" SESSION_SERVICE_API_KEY="$write_key" SESSION_SERVICE_READ_KEY="$read_key" \
        timeout --kill-after=5 "$example_timeout" "$@" || status=$?
    if [ "$status" = 0 ]; then
        passed=$((passed + 1))
        log "--- $name: passed"
    else
        failed=$((failed + 1))
        [ "$status" = 124 ] && log "$name: no end after ${example_timeout} s"
        log "--- $name: FAILED (exit status $status)"
        kill -0 "$service_pid" 2>/dev/null || { log "the service is no longer running"; service_log_tail; }
    fi
}
run_example typescript node "$ts/dist/agent.js"
run_example python python3 "$here/python/agent.py"

stop_service
echo "examples: $passed passed, $failed failed"
[ "$failed" = 0 ]
