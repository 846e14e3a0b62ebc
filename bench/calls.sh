#!/usr/bin/env bash
# bench/calls.sh [SERVICE_BINARY]: many calls at once against one (issue 25, goal 3). Single-event
# ingest into one session, then the same spread round-robin over CALLS sessions created
# beforehand, alternating in rounds, each run on a fresh store, measured by the project's load
# generator and by an outside one (Debian's wrk, installed with apt-get when missing). Prints
# each round and the median many/one ratios of req/s and p99.
#
# Settings (environment): ROUNDS=3, CALLS=10000, BENCH_SECONDS=6, BENCH_CONNS=32,
# SQLITE_SYNCHRONOUS=full, WRK=1 (0 skips wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
CALLS=${CALLS:-10000}
SECS=${BENCH_SECONDS:-6}
CONNS=${BENCH_CONNS:-32}
SYNC=${SQLITE_SYNCHRONOUS:-full}

TARGET=${CARGO_TARGET_DIR:-target}/release
if [ -n "${1:-}" ]; then
    SERVICE=$(realpath "$1")
    cargo build --release --locked --example bench_load
else
    SERVICE=$TARGET/session-service
    cargo build --release --locked --bin session-service --example bench_load
fi
LOAD=$TARGET/examples/bench_load
. bench/wrk.sh
ensure_wrk
. bench/service.sh
RUNS=$WORK/runs.jsonl

# start DB: the service on a fresh store at DB; sets ADDR and pid.
start() { serve DATABASE_URL="sqlite://$1" SQLITE_SYNCHRONOUS="$SYNC"; }

# create N: sessions call-0 … call-(N-1), over one keep-alive connection.
create() {
    python3 - "$ADDR" "$1" <<'PY'
import http.client, json, sys
host, port = sys.argv[1].rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port))
for i in range(int(sys.argv[2])):
    body = json.dumps({"sessionId": f"call-{i}", "language": "en"})
    conn.request("POST", "/sessions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status != 201:
        sys.exit(f"creating call-{i}: {response.status}")
PY
}

# wrk's script: unique event ids per thread; the session is call-(k mod CALLS), k counting the
# thread's requests interleaved with the other threads', so the calls are visited round-robin.
cat >"$WORK/post.lua" <<LUA
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
request = function()
  n = n + 1
  local call = ((n - 1) * 2 + tid - 1) % CALLS_PLACEHOLDER
  return wrk.format("POST", "/sessions/call-" .. call .. "/events",
    {["Content-Type"] = "application/json"},
    '{"eventId":"w' .. tid .. '-' .. n .. '","type":"user_speech","payload":{"text":"hello, I would like to check my order"}}')
end
LUA

for i in $(seq "$ROUNDS"); do
    for side in one many; do
        sessions=1
        [ "$side" = many ] && sessions=$CALLS
        start "$WORK/ingest-$side-$i.db"
        "$LOAD" ingest --addr "$ADDR" --id "ingest-$side-$i" --scenario "ingest-$side" \
            --pid "$pid" --conns "$CONNS" --duration "$SECS" --warmup 1 --threads 2 \
            --backend sqlite --out "$RUNS" --kind POST --sessions "$sessions" >/dev/null
        stop
        if [ "${WRK:-1}" != 0 ]; then
            start "$WORK/wrk-$side-$i.db"
            create "$sessions"
            sed "s/CALLS_PLACEHOLDER/$sessions/" "$WORK/post.lua" >"$WORK/post-$side.lua"
            wrk_run "$RUNS" "wrk-ingest-$side-$i" -s "$WORK/post-$side.lua" "http://$ADDR"
            stop
        fi
    done
done

python3 bench/pairs.py "$RUNS" one many "ingest into $CALLS calls round-robin / into one call"
