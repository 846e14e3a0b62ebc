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
WRK_RUNS=$WORK/wrk.jsonl

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
            wrk_run "$WRK_RUNS" "wrk-read-$side-$i" "http://$ADDR/sessions/bench-deep/events?limit=20"
        fi
        stop
        if [ "${WRK:-1}" != 0 ]; then
            start "$bin" "$WORK/wrk-$side-$i.db"
            curl -fsS -o /dev/null -H 'Content-Type: application/json' \
                -d '{"sessionId":"wrk","language":"en"}' "http://$ADDR/sessions"
            wrk_run "$WRK_RUNS" "wrk-ingest-$side-$i" -s "$WORK/post.lua" "http://$ADDR"
            stop
        fi
    done
done

touch "$WRK_RUNS"
python3 - "$RUNS" "$WRK_RUNS" "$PAIRS" <<'PY'
import json, statistics, sys
runs = {}
for path in sys.argv[1:3]:
    for line in open(path):
        r = json.loads(line)
        runs[r["id"]] = r
pairs = int(sys.argv[3])
print(f"new / old, {pairs} pairs back to back (req/s ratio, p99 old -> new, errors)")
for scenario in ["ingest", "read", "wrk-ingest", "wrk-read"]:
    if f"{scenario}-old-1" not in runs:
        continue
    ratios, lines = [], []
    for i in range(1, pairs + 1):
        o, n = runs[f"{scenario}-old-{i}"], runs[f"{scenario}-new-{i}"]
        ratios.append(n["rps"] / o["rps"])
        lines.append(f"  {i}: {o['rps']:8.0f} -> {n['rps']:8.0f} req/s ({ratios[-1]:.2f}), "
                     f"p99 {o['p99_ms']:.2f} -> {n['p99_ms']:.2f} ms, errors {o.get('errors', 0)}/{n.get('errors', 0)}")
    p99o = statistics.median(runs[f"{scenario}-old-{i}"]["p99_ms"] for i in range(1, pairs + 1))
    p99n = statistics.median(runs[f"{scenario}-new-{i}"]["p99_ms"] for i in range(1, pairs + 1))
    print(f"{scenario}: median ratio {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}); "
          f"median p99 {p99o:.2f} -> {p99n:.2f} ms")
    print("\n".join(lines))
PY
