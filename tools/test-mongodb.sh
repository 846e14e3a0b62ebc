#!/usr/bin/env bash
# tools/test-mongodb.sh COMMAND [ARGS...]: runs COMMAND with MONGODB_URI pointing at a throwaway
# MongoDB-wire-compatible test server, then stops the server and exits with COMMAND's status.
#
# The server is SecantusDB (pinned in tools/test-mongodb-requirements.txt), installed into the
# project's .venv unless that version is there already, started on a free loopback port with its
# data in a temporary directory, and waited for (a ping answered) before COMMAND starts. Used by
# run-tests.sh when MONGODB_URI is unset, and by .ci/run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
VENV="$root/.venv"

log() { printf '[test-mongodb] %s\n' "$*" >&2; }
[ "$#" -gt 0 ] || { log "usage: tools/test-mongodb.sh COMMAND [ARGS...]"; exit 2; }

"$root/tools/venv-pins.sh" "$root/tools/test-mongodb-requirements.txt"

server_pid=""
server_dir=$(mktemp -d "${TMPDIR:-/tmp}/test-mongodb.XXXXXX")
command_pid=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    if [ -n "$command_pid" ] && kill -0 "$command_pid" 2>/dev/null; then
        kill -TERM "$command_pid" 2>/dev/null || true
        wait "$command_pid" 2>/dev/null || true
    fi
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        stop_server
    fi
    rm -rf "$server_dir"
}
# SIGTERM, then SIGKILL if the server has not exited within STOP_LIMIT seconds: a server wedged
# by a test (one thread holding its storage lock) ignores SIGTERM's clean shutdown, and an
# unbounded `wait` would hold the whole run until CI's own time limit.
STOP_LIMIT=10
# shellcheck disable=SC2317 # called by cleanup
stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$server_pid" 2>/dev/null && [ "$waited" -lt $((STOP_LIMIT * 10)) ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    if kill -0 "$server_pid" 2>/dev/null; then
        log "the test server did not exit within ${STOP_LIMIT}s of SIGTERM: killing it"
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log "starting SecantusDB on 127.0.0.1:$port"
"$VENV/bin/secantusd-py" --host 127.0.0.1 --port "$port" --storage-path "$server_dir/data" \
    >"$server_dir/server.log" 2>&1 &
server_pid=$!
uri="mongodb://127.0.0.1:$port/?directConnection=true"
if ! "$VENV/bin/python" - "$uri" <<'PY'
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

# In the background, so that a signal to this script is handled at once (bash defers traps while
# a foreground command runs); the trap then stops COMMAND and the server.
MONGODB_URI="$uri" "$@" &
command_pid=$!
rc=0
wait "$command_pid" || rc=$?
command_pid=""
if [ "$rc" -ne 0 ]; then
    log "COMMAND failed (exit $rc); the test server's last log lines:"
    tail -n 40 "$server_dir/server.log" >&2 || true
fi
exit "$rc"
