#!/usr/bin/env bash
# The one test command: builds, checks openapi.json, then runs every test (unit, contract, HTTP)
# on both backends, then an HTTP fuzz pass (fuzz/run-schemathesis.sh) on both backends.
#
# The MongoDB tests need a server. Unless MONGODB_URI is set, this script re-runs itself under
# tools/test-mongodb.sh, which installs the MongoDB-wire-compatible test server SecantusDB into
# ./.venv (git-ignored), starts it on a free loopback port, and stops it afterwards. With
# MONGODB_URI set (e.g. a real MongoDB from `docker compose`), the tests use that server instead.
# Arguments are passed to `cargo test`. Builds go wherever cargo puts them (CARGO_TARGET_DIR,
# build.target-dir): the binaries are found through cargo, never by a fixed path.
#
# After `cargo test`, tools/browser/run.sh tests the web console in a real browser (Debian's
# chromium, installed by that script when missing and run as root, driven by playwright-core from
# npm) against the service binary built here.
#
# Then the clients generated from openapi.json, the example clients and promtool's checks of the
# metrics and alert rules, each against the same binary.
#
# Environment: FUZZ=0 skips the fuzz pass; OPENAPI_CHECK=0 skips tools/openapi/check.sh;
# BROWSER_TESTS=0 skips the browser tests; CLIENTS=0 the generated and example clients;
# PROMETHEUS=0 the promtool checks (each says so in the output).
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '[run-tests] %s\n' "$*" >&2; }

if [ -z "${MONGODB_URI:-}" ]; then
    log "MONGODB_URI is unset: running against a throwaway SecantusDB (tools/test-mongodb.sh)"
    exec tools/test-mongodb.sh ./run-tests.sh "$@"
fi
log "using the MongoDB server in MONGODB_URI"

log "building"
# The JSON messages name every artifact cargo built; keep the service binary's path (not its
# unit-test binary's).
SESSION_SERVICE_BIN=$(cargo build --locked --all-targets --message-format=json-render-diagnostics |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if (m.get("reason") == "compiler-artifact" and m["target"]["name"] == "session-service"
            and "bin" in m["target"]["kind"] and not m["profile"]["test"] and m.get("executable")):
        print(m["executable"])
')
[ -x "$SESSION_SERVICE_BIN" ] || { log "cargo built no session-service binary"; exit 1; }
export SESSION_SERVICE_BIN
log "service binary: $SESSION_SERVICE_BIN"

# The committed OpenAPI document, by three tools (tools/openapi/check.sh). A failure here is
# reported at the end, after the tests ran.
openapi_rc=0
if [ "${OPENAPI_CHECK:-1}" != "0" ]; then
    log "checking openapi.json (tools/openapi/check.sh)"
    tools/openapi/check.sh openapi.json || openapi_rc=$?
else
    log "OPENAPI_CHECK=0: NOT checking openapi.json"
fi

# Every target (unit, integration, examples, benches as tests) unless the arguments pick some
# (`--test deploy_files`, `--lib`…): cargo would run all targets on top of those.
targets=(--all-targets)
for arg in "$@"; do
    [ "$arg" = "--" ] && break
    case "$arg" in
        --lib | --bins | --bin | --bin=* | --tests | --test | --test=* | --examples | --example | \
            --example=* | --benches | --bench | --bench=* | --doc | --all-targets) targets=() ;;
    esac
done
log "running the tests"
cargo test --locked "${targets[@]}" "$@"

# The web console in a real browser, against the binary built above. A failure here is
# reported at the end, after the fuzz pass ran.
browser_rc=0
if [ "${BROWSER_TESTS:-1}" != "0" ]; then
    log "testing the web console in a browser (tools/browser/run.sh)"
    tools/browser/run.sh || browser_rc=$?
else
    log "BROWSER_TESTS=0: NOT testing the web console in a browser"
fi

# Clients and operators, against the binary built above: typed clients generated from
# openapi.json (TypeScript under tsc --strict, Python) run a whole scenario
# (tools/openapi/clients/run.sh); the example voice agents run (examples/clients/run.sh); the
# alert rules and the /metrics text pass Prometheus's own promtool (tools/prometheus/check.sh).
# Failures are reported at the end. CLIENTS=0 skips the first two, PROMETHEUS=0 the third.
extra_failed=()
run_extra() {
    local name=$1
    shift
    log "$name"
    "$@" || extra_failed+=("$name")
}
if [ "${CLIENTS:-1}" != "0" ]; then
    run_extra "generated clients (tools/openapi/clients/run.sh)" tools/openapi/clients/run.sh openapi.json
    run_extra "example clients (examples/clients/run.sh)" examples/clients/run.sh
else
    log "CLIENTS=0: NOT running the generated and example clients"
fi
if [ "${PROMETHEUS:-1}" != "0" ]; then
    run_extra "metrics and alert rules (tools/prometheus/check.sh)" tools/prometheus/check.sh
else
    log "PROMETHEUS=0: NOT checking metrics and alert rules with promtool"
fi

# The HTTP fuzz pass (schemathesis, driven by openapi.json) on both backends: zero 5xx, zero
# dropped connections. Bounded: a fixed seed and example count. Skip with FUZZ=0.
if [ "${FUZZ:-1}" != "0" ]; then
    log "fuzzing the HTTP API (SQLite and MongoDB)"
    FUZZ_DATABASE_URL="$MONGODB_URI" fuzz/run-schemathesis.sh
else
    log "FUZZ=0: NOT fuzzing the HTTP API"
fi

failed=0
if [ "$browser_rc" -ne 0 ]; then
    log "FAILED: the browser tests of the web console (tools/browser/run.sh, output above)"
    failed=1
fi
for name in "${extra_failed[@]}"; do
    log "FAILED: $name (output above)"
    failed=1
done
if [ "$openapi_rc" -ne 0 ]; then
    log "FAILED: the OpenAPI checks of openapi.json (tools/openapi/check.sh, output above)"
    failed=1
fi
exit "$failed"
