#!/usr/bin/env bash
# tools/openapi/clients/run.sh [DOCUMENT]: typed clients generated from an OpenAPI document (default:
# the committed openapi.json) work against the real service, in TypeScript and in Python:
#   1. openapi-typescript (default options) generates the types of DOCUMENT;
#   2. tsc compiles scenario.ts against them, strict (tsconfig.json), to JavaScript that node runs,
#      and scenario.ts has no way around the types (no-casts.mjs: no any, casts, x!, ts-ignore):
#      a document whose types do not fit the API fails here;
#   3. openapi-python-client (tools/openapi/requirements.txt, in ./.venv) generates a client;
#   4. the service ($SESSION_SERVICE_BIN, required) runs on a free loopback port with SQLite in a
#      temporary folder and API keys (a write key and a read key, sent by the generated clients);
#   5. scenario.ts, through openapi-fetch, and 6. scenario.py, through the generated Python client,
#      each play one call on its own session: create (201, then 200), an event (201, its replay
#      200), a batch of 3 (201, replay 200), cursor walks both ways, one event, 404 and 409
#      problems, conditional appends (Expected-Seq: 201, stale 412 seq_mismatch with currentSeq,
#      a replay 200, a batch 201), the list filtered by status and metadata, complete (200, again
#      200), metadata PATCHes after the end (merge-patch 200; If-Match from GET's ETag 200, stale
#      412 precondition_failed; application/json 415), the list by end reason, the NDJSON export,
#      and 401/403 without a key or with the read key; create, GET, PATCH and complete carry ETag.
# The npm tools are pinned in package.json + package-lock.json (`npm ci` into the git-ignored
# node_modules here); everything generated goes to a temporary folder, removed at the end.
# Every check runs even when an earlier one fails (a scenario whose client could not be built
# counts as failed); the last line is "clients: N passed, N failed".
# Needs python3 with venv and Node >= 18.17 with npm; all traffic stays on 127.0.0.1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
VENV="$root/.venv"
export NO_UPDATE_NOTIFIER=1
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

log() { printf '[clients] %s\n' "$*" >&2; }
passed=0
failed=0
pass() { log "ok: $1"; passed=$((passed + 1)); }
fail() { log "FAILED: $1"; failed=$((failed + 1)); }
finish() {
    echo "clients: $passed passed, $failed failed"
    exit $((failed > 0))
}

doc=$(realpath -e "${1:-$root/openapi.json}" 2>/dev/null) || {
    fail "no such document: ${1:-$root/openapi.json}"
    finish
}
if [ -z "${SESSION_SERVICE_BIN:-}" ] || [ ! -x "$SESSION_SERVICE_BIN" ]; then
    fail "SESSION_SERVICE_BIN must name the built session-service binary (./run-tests.sh sets it), e.g. SESSION_SERVICE_BIN=target/debug/session-service"
    finish
fi

# --- the tools ------------------------------------------------------------------------------------
"$root/tools/venv-pins.sh" "$root/tools/openapi/requirements.txt" || {
    fail "the Python tools are not installed (see above)"
    finish
}

npm_how="cd tools/openapi/clients && npm ci --ignore-scripts (Debian: apt-get install nodejs npm first)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    fail "no node/npm on PATH; install them, then run: $npm_how"
    finish
fi
# Every devDependency of package.json at its pinned version in node_modules.
installed() {
    node -e '
        const dir = process.argv[1];
        const wanted = require(dir + "/package.json").devDependencies;
        for (const [name, version] of Object.entries(wanted)) {
            let got = "";
            try { got = require(dir + "/node_modules/" + name + "/package.json").version; } catch {}
            if (got !== version) process.exit(1);
        }' "$here" 2>/dev/null
}
if ! installed; then
    log "installing the pinned openapi-typescript, openapi-fetch, typescript into tools/openapi/clients/node_modules (npm ci)"
    (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2 ||
        { fail "npm ci failed; run: $npm_how"; finish; }
    installed || { fail "the pinned packages are still not installed; run: $npm_how"; finish; }
fi
version() { node -p 'require(process.argv[1]).version' "$here/node_modules/$1/package.json"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/openapi-clients.XXXXXX")
service_pid=""
stop_service() {
    [ -n "$service_pid" ] || return 0
    kill -TERM "$service_pid" 2>/dev/null || true
    local rc=0
    wait "$service_pid" 2>/dev/null || rc=$?
    service_pid=""
    [ "$rc" -eq 0 ] || log "the service exited $rc on SIGTERM"
}
trap 'stop_service; rm -rf "$work"' EXIT
log "document: $doc"

# --- 1. TypeScript types (openapi-typescript, default options) -------------------------------------
ts="$work/ts"
mkdir -p "$ts"
cp "$here/scenario.ts" "$here/tsconfig.json" "$here/package.json" "$ts/"
ln -s "$here/node_modules" "$ts/node_modules"
ts_ready=0
v=$(version openapi-typescript)
if "$here/node_modules/.bin/openapi-typescript" "$doc" -o "$ts/api.d.ts" >"$work/openapi-typescript.log" 2>&1; then
    pass "openapi-typescript $v generated the types (default options)"
    # --- 2. tsc, strict -------------------------------------------------------------------------------
    v=$(version typescript)
    if ! node "$here/no-casts.mjs" "$here/scenario.ts" >"$work/no-casts.log" 2>&1; then
        sed 's/^/  /' "$work/no-casts.log" >&2
        fail "scenario.ts goes around the generated types (above): no any, casts, x! or ts-ignore comments"
    elif (cd "$ts" && "$here/node_modules/.bin/tsc" -p tsconfig.json --strict) >"$work/tsc.log" 2>&1; then
        pass "tsc $v compiled scenario.ts against them (strict, openapi-fetch $(version openapi-fetch))"
        ts_ready=1
    else
        sed -e "s#$ts/##g" -e 's/^/  /' "$work/tsc.log" >&2
        # The generated types that make no usable object (e.g. Record<string, never>) say why.
        # shellcheck disable=SC2016 # $defs is openapi-typescript's, not a shell variable
        grep -n 'Record<string, never>' "$ts/api.d.ts" | grep -v -e 'webhooks' -e '\$defs' | sed 's/^/  api.d.ts:/' >&2 || true
        fail "tsc $v: scenario.ts does not compile against the generated types (above)"
    fi
else
    sed 's/^/  /' "$work/openapi-typescript.log" >&2
    fail "openapi-typescript $v could not generate types"
fi

# --- 3. the Python client (openapi-python-client) ---------------------------------------------------
py_ready=0
v=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("openapi-python-client"))')
if (cd "$work" && "$VENV/bin/openapi-python-client" generate --path "$doc" \
    --output-path "$work/py/session_service_client" --meta none \
    --config "$root/tools/openapi/client-config.yaml") >"$work/generate.log" 2>&1; then
    pass "openapi-python-client $v generated a client"
    py_ready=1
else
    sed 's/^/  /' "$work/generate.log" >&2
    fail "openapi-python-client $v could not generate a client"
fi

# --- 4. the service: SQLite in $work, a free loopback port, API keys --------------------------------
key() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
write_key=$(key)
read_key=$(key)
service_log="$work/service.log"
env -u API_KEYS_FILE -u RATE_LIMIT_PER_SECOND -u RATE_LIMIT_BURST \
    HOST=127.0.0.1 PORT=0 DATABASE_URL="sqlite://$work/db/sessions.db" LOG_FORMAT=json \
    API_KEYS="write:$write_key,read:$read_key" \
    "$SESSION_SERVICE_BIN" >"$service_log" 2>&1 &
service_pid=$!
base=""
deadline=$((SECONDS + 30))
while [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$service_pid" 2>/dev/null || break
    if [ -z "$base" ]; then
        address=$(grep -o '"address":"127\.0\.0\.1:[0-9]*"' "$service_log" | head -n 1 | cut -d'"' -f4 || true)
        [ -n "$address" ] && base="http://$address"
    fi
    if [ -n "$base" ] && python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "$base/ready" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
service_ready=0
if [ -n "$base" ] && kill -0 "$service_pid" 2>/dev/null &&
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$base/ready" 2>/dev/null; then
    log "service: $SESSION_SERVICE_BIN on $base (SQLite in a temporary folder, API keys on)"
    service_ready=1
else
    sed 's/^/  /' "$service_log" >&2
    log "the service did not become ready on 127.0.0.1 within 30 s (its log above)"
fi

stamp="$(date +%s)-$$"
scenario() { # name ready command...
    local name=$1 ready=$2
    shift 2
    if [ "$ready" != 1 ]; then
        fail "$name: not run (its client could not be built, above)"
    elif [ "$service_ready" != 1 ]; then
        fail "$name: not run (the service is not ready, above)"
    elif SESSION_SERVICE_API_KEY="$write_key" SESSION_SERVICE_READ_KEY="$read_key" timeout 180 "$@" >&2; then
        pass "$name"
    else
        fail "$name (above)"
    fi
}

# --- 5. the TypeScript scenario, 6. the Python scenario ---------------------------------------------
scenario "TypeScript scenario (openapi-fetch + the generated types, node $(node --version))" "$ts_ready" \
    node "$ts/out/scenario.js" "$base" "clients-ts-$stamp"
scenario "Python scenario (the generated openapi-python-client client)" "$py_ready" \
    "$VENV/bin/python" "$here/scenario.py" "$work/py" "$base" "clients-py-$stamp"

stop_service
# The service's errors and 5xx answers, if any (a scenario's failure may be the service's).
if grep -q -e '"level":"ERROR"' -e '"status":5[0-9][0-9]' "$service_log"; then
    log "the service logged errors or 5xx answers:"
    grep -e '"level":"ERROR"' -e '"status":5[0-9][0-9]' "$service_log" | tail -n 10 | cut -c1-400 | sed 's/^/  /' >&2
fi
finish
