#!/usr/bin/env bash
# HTTP fuzz pass: starts the already-built service on a throwaway SQLite file (and, with
# FUZZ_DATABASE_URL, once more on that MongoDB), and runs schemathesis against it, driven by
# ./openapi.json. Fails on any 5xx, any request without a response (dropped connection, timeout),
# any response that does not match the document, or a service that dies. Bounded and seeded, so a
# run is reproducible and short. Builds nothing: run `cargo build` first.
#
# Environment (all optional):
#   SESSION_SERVICE_BIN  the binary (default: debug/session-service in cargo's target directory,
#                        as `cargo metadata` reports it: honours CARGO_TARGET_DIR, build.target-dir)
#   FUZZ_MAX_EXAMPLES    test cases per operation and phase (default 100)
#   FUZZ_SEED            schemathesis/hypothesis seed (default 20251221)
#   FUZZ_PHASES          schemathesis phases (default examples,coverage,fuzzing,stateful)
#   FUZZ_CHECKS          schemathesis checks (default: see CHECKS below)
#   FUZZ_WORKERS         concurrent schemathesis workers (default 1: keeps runs reproducible)
#   FUZZ_TIMEOUT         hard limit in seconds for one schemathesis run (default 300)
#   FUZZ_DATABASE_URL    mongodb://… : fuzz a second service on this MongoDB too; without a
#                        database name in the URI a fresh fuzz_* database is used and dropped after
#   FUZZ_REPORT_DIR      keep schemathesis' reports (JUnit, NDJSON) and the service logs here
# Arguments are passed on to `schemathesis run` (e.g. --include-path /sessions).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

VENV=".venv"
REQUIREMENTS="fuzz/requirements.txt"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-100}"
SEED="${FUZZ_SEED:-20251221}"
PHASES="${FUZZ_PHASES:-examples,coverage,fuzzing,stateful}"
WORKERS="${FUZZ_WORKERS:-1}"
RUN_TIMEOUT="${FUZZ_TIMEOUT:-300}"
# Every check that holds for a correct service. Left out: positive_data_acceptance and
# negative_data_rejection, which need the document to state every rule the service enforces (id
# patterns on path parameters, the `order` values, BCP 47 languages, the optional complete body);
# see fuzz/README.md. ignored_auth and missing_required_header have nothing to test here.
CHECKS="${FUZZ_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method,allow_header_conformance,use_after_free,ensure_resource_availability}"

# The service is on loopback: never send its traffic through a proxy from the environment.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

log() { printf '[fuzz] %s\n' "$*" >&2; }
die() { log "$*"; echo "fuzz: 0 passed, 1 failed"; exit 1; }

if [ -n "${SESSION_SERVICE_BIN:-}" ]; then
    BIN=$SESSION_SERVICE_BIN
else
    target_dir=$(cargo metadata --format-version 1 --no-deps --offline |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') ||
        die "cargo metadata could not tell the target directory (set SESSION_SERVICE_BIN)"
    BIN="$target_dir/debug/session-service"
fi
[ -x "$BIN" ] || die "no service binary at $BIN (run cargo build, or set SESSION_SERVICE_BIN)"
case "$MAX_EXAMPLES" in '' | *[!0-9]* | 0) die "FUZZ_MAX_EXAMPLES must be a positive whole number" ;; esac
case "$SEED" in '' | *[!0-9]*) die "FUZZ_SEED must be a whole number" ;; esac
case "${FUZZ_DATABASE_URL:-mongodb://}" in
    mongodb://* | mongodb+srv://*) ;;
    *) die "FUZZ_DATABASE_URL must be a mongodb:// or mongodb+srv:// URI (SQLite is always fuzzed)" ;;
esac
case "$RUN_TIMEOUT" in '' | *[!0-9]* | 0) die "FUZZ_TIMEOUT must be a positive whole number of seconds" ;; esac

# --- schemathesis, pinned, in the project's virtualenv -------------------------------------------
tools/venv-pins.sh "$REQUIREMENTS" || die "schemathesis is not installed (see above)"
ST_VERSION=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))')

# --- the service ----------------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/session-service-fuzz.XXXXXX")
service_pid=""
fuzzer_pid=""
mongo_drop_url=""
stop_fuzzer() {
    if [ -n "$fuzzer_pid" ] && kill -0 "$fuzzer_pid" 2>/dev/null; then
        kill -TERM "$fuzzer_pid" 2>/dev/null || true
        wait "$fuzzer_pid" 2>/dev/null || true
    fi
    fuzzer_pid=""
}
stop_service() {
    if [ -n "$service_pid" ] && kill -0 "$service_pid" 2>/dev/null; then
        kill -TERM "$service_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$service_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$service_pid" 2>/dev/null || true
    fi
    if [ -n "$service_pid" ]; then wait "$service_pid" 2>/dev/null || true; fi
    service_pid=""
}
drop_mongo_database() {
    [ -n "$mongo_drop_url" ] || return 0
    "$VENV/bin/python" - "$mongo_drop_url" <<'PY' >/dev/null 2>&1 || true
import sys
from pymongo import MongoClient
client = MongoClient(sys.argv[1], serverSelectionTimeoutMS=3000, socketTimeoutMS=60000)
client.drop_database(client.get_default_database().name)
PY
    mongo_drop_url=""
}
cleanup() {
    local status=$?
    stop_fuzzer
    stop_service
    drop_mongo_database
    if [ -n "${FUZZ_REPORT_DIR:-}" ]; then
        { mkdir -p "$FUZZ_REPORT_DIR" && cp -R "$work"/. "$FUZZ_REPORT_DIR"/; } 2>/dev/null || true
        rm -rf "$work"
    elif [ "$status" -ne 0 ]; then
        log "reports and service logs kept in $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_service LABEL DATABASE_URL: starts the binary on a free port; sets service_pid and base_url.
start_service() {
    local label=$1 database_url=$2 out="$work/$1/service.log" err="$work/$1/service.stderr"
    mkdir -p "$work/$label"
    # The log exists before the service opens it: it is read at once below, under pipefail.
    : >"$out"
    # A clean environment: nothing from the caller's shell (API keys, body limits…) changes what
    # is fuzzed. RUST_LOG keeps the per-request "request served" lines that are counted.
    env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
        HOST=127.0.0.1 PORT=0 LOG_FORMAT=json RUST_LOG=session_service=info \
        DATABASE_URL="$database_url" \
        "$BIN" >"$out" 2>"$err" &
    service_pid=$!
    base_url=""
    local address
    for _ in $(seq 300); do
        address=$(sed -n 's/.*"message": *"listening".*"address": *"\([^"]*\)".*/\1/p' "$out" | head -n1)
        if [ -n "$address" ]; then
            base_url="http://$address"
            return 0
        fi
        kill -0 "$service_pid" 2>/dev/null || break
        sleep 0.1
    done
    log "the service ($label) did not report a listening address; its output:"
    tail -n 40 "$out" "$err" >&2 || true
    return 1
}

# mongo_url URL: the URL with a fresh fuzz_* database when it names none (printed); sets
# mongo_drop_url when that database is ours to drop afterwards.
fuzz_mongo_url() {
    "$VENV/bin/python" - "$1" <<'PY'
import secrets, sys
from urllib.parse import urlsplit, urlunsplit
url = urlsplit(sys.argv[1])
if url.path.strip("/"):
    print(url.geturl())
else:
    print(urlunsplit(url._replace(path="/fuzz_" + secrets.token_hex(4))))
PY
}

total_passed=0
total_failed=0
total_requests=0
total_served=0
started=$(date +%s)

# fuzz_backend LABEL DATABASE_URL [schemathesis args…]
fuzz_backend() {
    local label=$1 database_url=$2
    shift 2
    local dir="$work/$label" rc=0 died="" timed_out=""
    start_service "$label" "$database_url" || {
        total_failed=$((total_failed + 1))
        return 0
    }
    log "$label: service at $base_url (pid $service_pid); schemathesis $ST_VERSION," \
        "seed $SEED, at most $MAX_EXAMPLES examples per operation"
    if ! "$VENV/bin/python" - "$base_url/openapi.json" <<'PY' 2>/dev/null; then
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
    served = json.load(response)
sys.exit(served != json.load(open("openapi.json")))
PY
        log "warning: ./openapi.json differs from the document the service serves at /openapi.json"
    fi
    # Run from $dir: schemathesis and hypothesis keep nothing in the repository. In the background,
    # so that a signal to this script is handled at once (bash defers traps while a foreground
    # command runs).
    (
        cd "$dir"
        exec timeout --kill-after=10 "$RUN_TIMEOUT" \
            "$root/$VENV/bin/schemathesis" --config-file "$root/fuzz/schemathesis.toml" --no-color run \
            "$root/openapi.json" \
            --url "$base_url" \
            --phases "$PHASES" \
            --checks "$CHECKS" \
            --max-examples "$MAX_EXAMPLES" \
            --seed "$SEED" \
            --workers "$WORKERS" \
            --generation-database none \
            --request-timeout 20 \
            --request-retries 0 \
            --suppress-health-check too_slow \
            --report junit,ndjson \
            --report-dir "$dir" \
            --report-ndjson-path "$dir/events.ndjson" \
            --report-junit-path "$dir/junit.xml" \
            "$@"
    ) &
    fuzzer_pid=$!
    wait "$fuzzer_pid" || rc=$?
    fuzzer_pid=""
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then timed_out=--timed-out; fi
    if ! kill -0 "$service_pid" 2>/dev/null; then died=--service-died; fi
    stop_service
    local summary_rc=0
    "$VENV/bin/python" fuzz/summarize.py --label "$label" --ndjson "$dir/events.ndjson" \
        --service-log "$dir/service.log" --counts "$dir/counts" \
        --schemathesis-rc "$rc" $died $timed_out || summary_rc=$?
    if [ "$summary_rc" -ne 0 ]; then
        log "$label: last lines of the service's stderr:"
        tail -n 20 "$dir/service.stderr" >&2 || true
    fi
    local passed failed requests served
    read -r passed failed requests served <"$dir/counts" || { passed=0 failed=1 requests=0 served=0; }
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    total_requests=$((total_requests + requests))
    total_served=$((total_served + served))
}

fuzz_backend sqlite "sqlite://$work/sqlite/fuzz.db" "$@"

if [ -n "${FUZZ_DATABASE_URL:-}" ]; then
    mongo_url=$(fuzz_mongo_url "$FUZZ_DATABASE_URL")
    [ "$mongo_url" = "$FUZZ_DATABASE_URL" ] || mongo_drop_url="$mongo_url"
    fuzz_backend mongodb "$mongo_url" "$@"
    drop_mongo_database
fi

echo "fuzz: $total_requests requests made, $total_served answered by the service, in $(( $(date +%s) - started ))s (schemathesis $ST_VERSION, seed $SEED, max $MAX_EXAMPLES examples per operation)"
echo "fuzz: $total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
