#!/usr/bin/env bash
# bench/webhooks.sh: what webhooks deliver and what they cost, on the embedded store (release
# build, receivers on loopback, WEBHOOK_ALLOW_PRIVATE_NETWORKS=true).
#   1. Throughput: EVENTS events appended in batches of 100 to 100 calls with one endpoint
#      subscribed to event.appended; messages per second from the first to the last one received
#      (and that each came once). Then a quarter as many into one call, whose messages go one
#      after another (each waits for the one before to have had its first attempt).
#   2. Delay: one event at a time, RATE per second for SECS seconds; from each 201 to the
#      receiver's request, p50 / p99 / max.
#   3. Ingest cost: single-event ingest without any endpoint and with one subscribed to every
#      type (event.appended included), back to back in interleaved pairs on fresh stores, into
#      one call and into 100 by the project's load generator, into one call by Debian's wrk; the
#      median on/off ratio of req/s and p99.
# Settings (environment): EVENTS=20000, RATE=50, SECS=20, PAIRS=3, BENCH_SECONDS=6,
# BENCH_CONNS=32, WRK=1 (0 skips wrk), SERVICE_BIN (default: the release build of this tree).
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-20000}
RATE=${RATE:-50}
LATENCY_SECS=${SECS:-20}
PAIRS=${PAIRS:-3}
SECS=${BENCH_SECONDS:-6}
CONNS=${BENCH_CONNS:-32}

cargo build --release --locked --bin session-service --example bench_load --example bench_webhooks
TARGET=${CARGO_TARGET_DIR:-target}/release
LOAD=$TARGET/examples/bench_load
HOOKS=$TARGET/examples/bench_webhooks
SERVICE=$(realpath "${SERVICE_BIN:-$TARGET/session-service}")
. bench/wrk.sh
ensure_wrk
. bench/service.sh
RUNS=$WORK/runs.jsonl

# start DB: the service on a fresh store at DB, receivers on loopback allowed; sets ADDR and pid.
start() { serve DATABASE_URL="sqlite://$1" WEBHOOK_ALLOW_PRIVATE_NETWORKS=true; }

start "$WORK/throughput.db"
echo "[webhooks] throughput: $EVENTS events in batches of 100, one endpoint on event.appended"
"$HOOKS" throughput --addr "$ADDR" --events "$EVENTS" --sessions 100
stop
start "$WORK/throughput-1.db"
echo "[webhooks] throughput: the same into one call (its messages go one after another)"
"$HOOKS" throughput --addr "$ADDR" --events "$((EVENTS / 4))" --sessions 1
stop

start "$WORK/latency.db"
echo "[webhooks] delay from a 201 to the receiver: $RATE events/s for $LATENCY_SECS s"
"$HOOKS" latency --addr "$ADDR" --rate "$RATE" --secs "$LATENCY_SECS"
stop

RPORT=$("$LOAD" free-port)
"$HOOKS" receive --port "$RPORT" 2>/dev/null &
OTHERS+=($!)
cat >"$WORK/post.lua" <<'LUA'
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/sessions/wrk/events", {["Content-Type"] = "application/json"},
    '{"eventId":"w' .. tid .. '-' .. n .. '","type":"user_speech","payload":{"text":"hello, I would like to check my order"}}')
end
LUA
subscribe() {
    curl -fsS -o /dev/null -H 'Content-Type: application/json' "http://$ADDR/webhooks" -d \
        "{\"url\":\"http://127.0.0.1:$RPORT/hook\",\"types\":[\"session.created\",\"session.updated\",\"session.ended\",\"session.deleted\",\"event.appended\"]}"
}
for i in $(seq "$PAIRS"); do
    for side in off on; do
        start "$WORK/ingest-$side-$i.db"
        [ "$side" = on ] && subscribe
        "$LOAD" ingest --addr "$ADDR" --id "ingest-$side-$i" --scenario ingest --pid "$pid" \
            --conns "$CONNS" --duration "$SECS" --warmup 1 --threads 2 --backend sqlite \
            --out "$RUNS" --kind POST --sessions 1 >/dev/null
        stop
        start "$WORK/ingest100-$side-$i.db"
        [ "$side" = on ] && subscribe
        "$LOAD" ingest --addr "$ADDR" --id "ingest100-$side-$i" --scenario ingest100 --pid "$pid" \
            --conns "$CONNS" --duration "$SECS" --warmup 1 --threads 2 --backend sqlite \
            --out "$RUNS" --kind POST --sessions 100 >/dev/null
        stop
        if [ "${WRK:-1}" != 0 ]; then
            start "$WORK/wrk-$side-$i.db"
            [ "$side" = on ] && subscribe
            curl -fsS -o /dev/null -H 'Content-Type: application/json' \
                -d '{"sessionId":"wrk","language":"en"}' "http://$ADDR/sessions"
            wrk_run "$RUNS" "wrk-ingest-$side-$i" -s "$WORK/post.lua" "http://$ADDR"
            if [ "$side" = on ]; then
                # The endpoint did receive: its log has delivered messages.
                id=$(curl -fsS "http://$ADDR/webhooks" | python3 -c 'import json,sys; print(json.load(sys.stdin)["webhooks"][0]["id"])')
                curl -fsS "http://$ADDR/webhooks/$id/deliveries?status=succeeded&limit=1" | grep -q '"succeeded"' ||
                    { echo "the endpoint received nothing" >&2; exit 1; }
            fi
            stop
        fi
    done
done

python3 bench/pairs.py "$RUNS" off on "ingest with an endpoint on every type / without"
