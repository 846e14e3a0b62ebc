#!/usr/bin/env bash
# bench/ab.sh OLD_BINARY NEW_BINARY: two builds of the service, back to back in interleaved pairs
# (old, new, old, new…), each on a fresh store, measured by the project's load generator and by
# an outside one (Debian's wrk, installed with apt-get when missing): single-event ingest into one
# session, and the first page of a seeded session. Prints each pair and the median new/old ratios
# of req/s and p99. For "what did this change cost": build the commit before it and after it.
#
# Settings (environment): PAIRS=5, BENCH_SECONDS=6, BENCH_CONNS=32, SQLITE_SYNCHRONOUS=full,
# SEED_EVENTS=100000, WRK=1 (0 skips wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

OLD=$(realpath "${1:?usage: bench/ab.sh OLD_BINARY NEW_BINARY}")
NEW=$(realpath "${2:?usage: bench/ab.sh OLD_BINARY NEW_BINARY}")
PAIRS=${PAIRS:-5}
SECS=${BENCH_SECONDS:-6}
CONNS=${BENCH_CONNS:-32}
SYNC=${SQLITE_SYNCHRONOUS:-full}
SEED_EVENTS=${SEED_EVENTS:-100000}

cargo build --release --locked --example bench_load
LOAD=${CARGO_TARGET_DIR:-target}/release/examples/bench_load
. bench/wrk.sh
ensure_wrk
. bench/service.sh
RUNS=$WORK/runs.jsonl

# start BINARY DB: BINARY on a fresh store at DB; sets ADDR and pid.
start() { serve DATABASE_URL="sqlite://$2" SQLITE_SYNCHRONOUS="$SYNC" -- "$1"; }

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

# The seeded session for reads, made once with the new build; every read run gets a copy.
start "$NEW" "$WORK/deep.db"
"$LOAD" seed-prepare --addr "$ADDR" --session bench-deep
stop
"$LOAD" seed --db "$WORK/deep.db" --session bench-deep --events "$SEED_EVENTS"

for i in $(seq "$PAIRS"); do
    for side in old new; do
        bin=$OLD
        [ "$side" = new ] && bin=$NEW
        start "$bin" "$WORK/ingest-$side-$i.db"
        "$LOAD" ingest --addr "$ADDR" --id "ingest-$side-$i" --scenario ingest --pid "$pid" \
            --conns "$CONNS" --duration "$SECS" --warmup 1 --threads 2 --backend sqlite \
            --out "$RUNS" --kind POST --sessions 1 >/dev/null
        stop
        cp "$WORK/deep.db" "$WORK/read-$side-$i.db"
        start "$bin" "$WORK/read-$side-$i.db"
        "$LOAD" read --addr "$ADDR" --id "read-$side-$i" --scenario read --pid "$pid" \
            --conns "$CONNS" --duration "$SECS" --warmup 1 --threads 2 --backend sqlite \
            --out "$RUNS" --kind GET --session bench-deep --at first >/dev/null
        if [ "${WRK:-1}" != 0 ]; then
            wrk_run "$RUNS" "wrk-read-$side-$i" "http://$ADDR/sessions/bench-deep/events?limit=20"
        fi
        stop
        if [ "${WRK:-1}" != 0 ]; then
            start "$bin" "$WORK/wrk-$side-$i.db"
            curl -fsS -o /dev/null -H 'Content-Type: application/json' \
                -d '{"sessionId":"wrk","language":"en"}' "http://$ADDR/sessions"
            wrk_run "$RUNS" "wrk-ingest-$side-$i" -s "$WORK/post.lua" "http://$ADDR"
            stop
        fi
    done
done

python3 bench/pairs.py "$RUNS" old new "new / old"
