#!/usr/bin/env bash
# tools/openapi/check.sh [DOCUMENT]: checks an OpenAPI document (default: the committed
# openapi.json) with three independent tools, each pinned and installed on first use into a
# git-ignored folder (then re-used):
#   1. openapi-spec-validator (tools/openapi/requirements.txt, in ./.venv): the document is valid
#      OpenAPI with zero errors, and every $ref resolves;
#   2. Redocly CLI's recommended lint (tools/openapi/package.json + package-lock.json, `npm ci`
#      into tools/openapi/node_modules): zero errors and zero warnings; among others every
#      operation has a `summary` and a `security` entry (`{}` for a public one), and the document
#      has `servers`;
#   3. openapi-python-client (same requirements) generates a client into a temporary folder, and
#      every operation (method + path) of the document must have a generated endpoint.
# Every check runs even when an earlier one fails; the last line is "openapi: N passed, N failed".
# Needs python3 with venv (Debian: python3-venv) and Node >= 18.17 with npm (Debian: nodejs npm).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
doc=$(realpath -e "${1:-$root/openapi.json}" 2>/dev/null) || {
    echo "[openapi] no such document: ${1:-$root/openapi.json}" >&2
    echo "openapi: 0 passed, 1 failed"
    exit 1
}
VENV="$root/.venv"

# Redocly: no telemetry, no update check (the npm registry is the only network at install time;
# the lint itself needs none).
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1

log() { printf '[openapi] %s\n' "$*" >&2; }
passed=0
failed=0
pass() { log "ok: $1"; passed=$((passed + 1)); }
fail() { log "FAILED: $1"; failed=$((failed + 1)); }
finish() {
    echo "openapi: $passed passed, $failed failed"
    exit $((failed > 0))
}

# --- the tools ------------------------------------------------------------------------------------
"$root/tools/venv-pins.sh" "$here/requirements.txt" || {
    fail "the Python tools are not installed (see above)"
    finish
}

redocly_version=$(sed -n 's/.*"@redocly\/cli": *"\([^"]*\)".*/\1/p' "$here/package.json")
redocly_installed() {
    [ "$(node -p 'require(process.argv[1]).version' "$here/node_modules/@redocly/cli/package.json" 2>/dev/null)" = "$redocly_version" ]
}
npm_how="cd tools/openapi && npm ci --ignore-scripts (Debian: apt-get install nodejs npm first)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    fail "no node/npm on PATH for Redocly CLI $redocly_version; install them, then run: $npm_how"
    finish
fi
if ! redocly_installed; then
    log "installing @redocly/cli@$redocly_version into tools/openapi/node_modules (npm ci)"
    (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2 ||
        { fail "npm ci failed; run: $npm_how"; finish; }
    redocly_installed || { fail "@redocly/cli@$redocly_version is still not installed; run: $npm_how"; finish; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/openapi-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "checking $doc"

# --- 1. openapi-spec-validator --------------------------------------------------------------------
v=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("openapi-spec-validator"))')
if "$VENV/bin/python" "$here/checks.py" spec "$doc" >&2; then
    pass "openapi-spec-validator $v: valid, every \$ref resolves"
else
    fail "openapi-spec-validator $v: the document is not valid (above)"
fi

# --- 2. Redocly's recommended lint ----------------------------------------------------------------
rc=0
(cd "$work" && "$here/node_modules/.bin/redocly" lint --config "$here/redocly.yaml" --format json \
    --max-problems 1000 "$doc") >"$work/lint.json" 2>"$work/lint.stderr" || rc=$?
if [ -s "$work/lint.json" ] && "$VENV/bin/python" "$here/checks.py" lint-report "$work/lint.json" >&2; then
    if [ "$rc" -eq 0 ]; then
        pass "redocly lint $redocly_version (recommended): zero errors, zero warnings"
    else
        cat "$work/lint.stderr" >&2
        fail "redocly lint $redocly_version exited $rc"
    fi
else
    [ -s "$work/lint.json" ] || cat "$work/lint.stderr" >&2
    fail "redocly lint $redocly_version (recommended): problems (above)"
fi

# --- 3. openapi-python-client covers every operation ----------------------------------------------
v=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("openapi-python-client"))')
if ! (cd "$work" && "$VENV/bin/openapi-python-client" generate --path "$doc" --output-path "$work/client" \
    --meta none --config "$here/client-config.yaml") >"$work/generate.log" 2>&1; then
    sed 's/^/  /' "$work/generate.log" >&2
    fail "openapi-python-client $v could not generate a client"
elif "$VENV/bin/python" "$here/checks.py" client "$doc" "$work/client" >&2; then
    pass "openapi-python-client $v: an endpoint for every operation"
else
    # Its warnings say why it dropped an operation.
    grep -v -e '^Generating ' -e '^$' -e 'please open an issue' "$work/generate.log" | sed 's/^/  /' >&2 || true
    fail "openapi-python-client $v: operations without a generated endpoint (above)"
fi

finish
