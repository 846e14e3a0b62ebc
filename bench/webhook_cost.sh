#!/usr/bin/env bash
# bench/webhook_cost.sh: what one webhook message costs in CPU, sustained (issue 22's ingest goal).
# bench/webhooks.sh compares req/s over a short window, during which deliveries may fall behind;
# this counts every message's cost until it is delivered, by process, from /proc.
#   1. The floor: Debian's wrk posting a signed event.appended message to the bench receiver
#      (examples/bench_webhooks.rs receive), 8 connections (the endpoint concurrency): the
#      machine's CPU per exchange (wrk, the receiver, the kernel), which no sender can go below.
#   2. Single-event ingest by wrk (2 threads, 32 connections) spread over CALLS calls, without an
#      endpoint ("off") and with one on event.appended ("on"), ROUNDS times: the service's CPU per
#      event during the run, then, for "on", until the endpoint has nothing pending, with the
#      receiver's CPU and how long the backlog took.
# Settings (environment): ROUNDS=2, CALLS=100, BENCH_SECONDS=5, SERVICE_BIN (default: the release
# build of this tree).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-2}
CALLS=${CALLS:-100}
SECS=${BENCH_SECONDS:-5}
CONNS=32

cargo build --release --locked --bin session-service --example bench_load --example bench_webhooks
TARGET=${CARGO_TARGET_DIR:-target}/release
LOAD=$TARGET/examples/bench_load
HOOKS=$TARGET/examples/bench_webhooks
SERVICE=$(realpath "${SERVICE_BIN:-$TARGET/session-service}")
. bench/wrk.sh
ensure_wrk
. bench/service.sh

# Busy CPU of the whole machine (user, nice, system, irq, softirq) and of one process, in ticks.
machine_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
process_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))
per() { python3 -c "print(f'{$1 * $TICK_US / $2:.1f}')"; } # per TICKS COUNT: µs per item

RPORT=$("$LOAD" free-port)
"$HOOKS" receive --port "$RPORT" >/dev/null 2>&1 &
receiver=$!
OTHERS+=("$receiver")
for _ in $(seq 100); do
    curl -fsS -o /dev/null -d '{}' "http://127.0.0.1:$RPORT/hook" 2>/dev/null && break
    sleep 0.1
done

body='{"type":"event.appended","timestamp":"2026-12-08T03:10:00.123Z","data":{"sessionId":"c7","eventId":"w1-12345","type":"user_speech","seq":12345,"timestamp":"2026-12-08T03:10:00.120Z","payload":{"text":"hello, I would like to check my order"}}}'
cat >"$WORK/hook.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["webhook-id"] = "msg_2f7c1e0a9b8d4c3e5f6a7b8c9d0e1f2a"
wrk.headers["webhook-timestamp"] = "1796612400"
wrk.headers["webhook-signature"] = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
LUA
m0=$(machine_ticks)
wrk -t1 -c8 -d"${SECS}s" -s "$WORK/hook.lua" "http://127.0.0.1:$RPORT/hook" >"$WORK/floor.wrk"
m1=$(machine_ticks)
n=$(awk '/requests in/{print $1}' "$WORK/floor.wrk")
echo "[webhook-cost] floor: $n exchanges, machine CPU $(per $((m1 - m0)) "$n") µs per exchange (wrk -> receiver)"

cat >"$WORK/post.lua" <<LUA
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/sessions/c" .. (n % $CALLS) .. "/events", {["Content-Type"] = "application/json"},
    '{"eventId":"w' .. tid .. '-' .. n .. '","type":"user_speech","payload":{"text":"hello, I would like to check my order"}}')
end
LUA
for round in $(seq "$ROUNDS"); do
    for side in off on; do
        serve DATABASE_URL="sqlite://$WORK/$side-$round.db" WEBHOOK_ALLOW_PRIVATE_NETWORKS=true
        for c in $(seq 0 $((CALLS - 1))); do
            curl -fsS -o /dev/null -H 'Content-Type: application/json' \
                -d "{\"sessionId\":\"c$c\",\"language\":\"en\"}" "http://$ADDR/sessions"
        done
        if [ "$side" = on ]; then
            id=$(curl -fsS -H 'Content-Type: application/json' "http://$ADDR/webhooks" \
                -d "{\"url\":\"http://127.0.0.1:$RPORT/hook\",\"types\":[\"event.appended\"]}" |
                python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
        fi
        s0=$(process_ticks "$pid")
        r0=$(process_ticks "$receiver")
        wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$WORK/post.lua" "http://$ADDR" >"$WORK/$side-$round.wrk"
        s1=$(process_ticks "$pid")
        n=$(awk '/requests in/{print $1}' "$WORK/$side-$round.wrk")
        rps=$(awk '/Requests\/sec/{printf "%.0f", $2}' "$WORK/$side-$round.wrk")
        line="[webhook-cost] $side, round $round: $rps req/s, $n events; service $(per $((s1 - s0)) "$n") µs per event during the run"
        if [ "$side" = on ]; then
            started=$(date +%s%N)
            while curl -fsS "http://$ADDR/webhooks/$id/deliveries?status=pending&limit=1" | grep -q '"messageId"'; do
                sleep 0.5
            done
            drained=$((($(date +%s%N) - started) / 1000000))
            s2=$(process_ticks "$pid")
            r2=$(process_ticks "$receiver")
            line="$line; to the last delivery (${drained} ms later): service $(per $((s2 - s0)) "$n"), receiver $(per $((r2 - r0)) "$n") µs per event"
        fi
        echo "$line"
        stop
    done
done
