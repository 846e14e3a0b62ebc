#!/usr/bin/env bash
# The one test command: builds, then runs every test (unit, contract, HTTP) on both backends.
#
# The MongoDB tests need a server. Unless MONGODB_URI is set, this script installs the
# MongoDB-wire-compatible test server SecantusDB into ./.venv (git-ignored), starts it on a free
# loopback port, and stops it afterwards. With MONGODB_URI set (e.g. a real MongoDB from
# `docker compose`), the tests use that server instead. Arguments are passed to `cargo test`.
# Then an HTTP fuzz pass (fuzz/run-schemathesis.sh) runs against the service on both backends.
set -euo pipefail
cd "$(dirname "$0")"

SECANTUS_VERSION="0.7.0b3"
VENV=".venv"

log() { printf '[run-tests] %s\n' "$*" >&2; }

echo "[run-tests] building" >&2
cargo build --locked --all-targets

server_pid=""
server_dir=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    [ -n "$server_dir" ] && rm -rf "$server_dir"
}
trap cleanup EXIT

if [ -z "${MONGODB_URI:-}" ]; then
    if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('SecantusDB') != '$SECANTUS_VERSION')" 2>/dev/null; then
        log "installing SecantusDB==$SECANTUS_VERSION into $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "SecantusDB==$SECANTUS_VERSION"
    fi
    port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    server_dir=$(mktemp -d)
    log "starting SecantusDB on 127.0.0.1:$port"
    "$VENV/bin/secantusd-py" --host 127.0.0.1 --port "$port" --storage-path "$server_dir/data" \
        >"$server_dir/server.log" 2>&1 &
    server_pid=$!
    export MONGODB_URI="mongodb://127.0.0.1:$port/?directConnection=true"
    if ! "$VENV/bin/python" - "$MONGODB_URI" <<'PY'
import sys, time
from pymongo import MongoClient
deadline = time.time() + 60
while True:
    try:
        MongoClient(sys.argv[1], serverSelectionTimeoutMS=1000).admin.command("ping")
        break
    except Exception as e:
        if time.time() > deadline:
            sys.exit(f"no ping answer: {e}")
        time.sleep(0.2)
PY
    then
        log "the MongoDB test server did not answer; its log:"
        tail -n 40 "$server_dir/server.log" >&2 || true
        exit 1
    fi
else
    log "using the MongoDB server in MONGODB_URI"
fi

log "running the tests"
cargo test --locked --all-targets "$@"

# The HTTP fuzz pass (schemathesis, driven by openapi.json) on both backends: zero 5xx, zero
# dropped connections. Bounded: a fixed seed and example count. Skip with FUZZ=0.
if [ "${FUZZ:-1}" != "0" ]; then
    log "fuzzing the HTTP API (SQLite and MongoDB)"
    FUZZ_DATABASE_URL="$MONGODB_URI" fuzz/run-schemathesis.sh
fi
