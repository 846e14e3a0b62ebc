#!/usr/bin/env bash
# bench/cores.sh: how first-page reads scale with the cores the service may use, with the embedded
# store's readers sized to them (SQLITE_READER_THREADS unset: one per core, at least 2). The service
# is pinned with taskset to the first core (with 1 reader, then 2), then to the first two cores
# (and so on up to CORES, default readers), each on a copy of one seeded session, in interleaved
# rounds; the load generator (and wrk) run unpinned. Prints req/s, p99 and ratios against one
# core with one reader.
# Settings (environment): ROUNDS=3, BENCH_SECONDS=6, BENCH_CONNS=32, CORES=$(nproc),
# SEED_EVENTS=100000, WRK=1 (0 skips wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${BENCH_SECONDS:-6}
CONNS=${BENCH_CONNS:-32}
CORES=${CORES:-$(nproc)}
SEED_EVENTS=${SEED_EVENTS:-100000}
cargo build --release --locked --bin session-service --example bench_load
TARGET=${CARGO_TARGET_DIR:-target}/release
LOAD=$TARGET/examples/bench_load
SERVICE=$(realpath "${SERVICE_BIN:-$TARGET/session-service}")
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 1; }
. bench/wrk.sh
ensure_wrk
. bench/service.sh
RUNS=$WORK/runs.jsonl

# start CPUS DB [NAME=VALUE...]: the service pinned to CPUS, its store at DB; sets ADDR and pid.
start() {
    local cpus=$1 db=$2
    shift 2
    serve DATABASE_URL="sqlite://$db" "$@" -- taskset -c "$cpus" "$SERVICE"
}

start 0 "$WORK/deep.db"
"$LOAD" seed-prepare --addr "$ADDR" --session bench-deep
stop
"$LOAD" seed --db "$WORK/deep.db" --session bench-deep --events "$SEED_EVENTS"

one() { # one ID CPUS [ENV...]
    local id=$1 cpus=$2
    shift 2
    cp "$WORK/deep.db" "$WORK/$id.db"
    start "$cpus" "$WORK/$id.db" "$@"
    "$LOAD" read --addr "$ADDR" --id "$id" --scenario "$id" --pid "$pid" --conns "$CONNS" \
        --duration "$SECS" --warmup 1 --threads 2 --backend sqlite --out "$RUNS" --kind GET \
        --session bench-deep --at first >/dev/null
    if [ "${WRK:-1}" != 0 ]; then
        wrk_run "$RUNS" "wrk-$id" "http://$ADDR/sessions/bench-deep/events?limit=20"
    fi
    stop
    rm -f "$WORK/$id.db"*
}

for r in $(seq "$ROUNDS"); do
    one "c1-readers1-$r" 0 SQLITE_READER_THREADS=1
    one "c1-readers2-$r" 0 SQLITE_READER_THREADS=2
    for n in $(seq 2 "$CORES"); do
        one "c$n-$r" "0-$((n - 1))"
    done
done

python3 - "$RUNS" "$ROUNDS" "$CORES" <<'PY'
import json, statistics, sys
runs = {r["id"]: r for r in map(json.loads, open(sys.argv[1]))}
rounds, cores = int(sys.argv[2]), int(sys.argv[3])
for gen, prefix in [("bench_load", ""), ("wrk", "wrk-")]:
    if f"{prefix}c1-readers1-1" not in runs:
        continue
    med = lambda name, f: statistics.median(runs[f"{prefix}{name}-{r}"][f] for r in range(1, rounds + 1))
    base = med("c1-readers1", "rps")
    print(f"{gen}: first-page reads, service pinned to N cores, medians of {rounds} rounds")
    print(f"  1 core, 1 reader: {base:8.0f} req/s (1.00x), p99 {med('c1-readers1', 'p99_ms'):.2f} ms")
    print(f"  1 core, 2 readers (the default there, and the old constant): {med('c1-readers2', 'rps'):8.0f} req/s ({med('c1-readers2', 'rps') / base:.2f}x), p99 {med('c1-readers2', 'p99_ms'):.2f} ms")
    for n in range(2, cores + 1):
        print(f"  {n} cores, default readers ({max(n, 2)}): {med(f'c{n}', 'rps'):8.0f} req/s ({med(f'c{n}', 'rps') / base:.2f}x), p99 {med(f'c{n}', 'p99_ms'):.2f} ms")
PY
