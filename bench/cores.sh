#!/usr/bin/env bash
# bench/cores.sh: how first-page reads scale with the cores the service may use, and what sizing
# the embedded store's readers to them (SQLITE_READER_THREADS unset: one per core) gives against
# the old fixed 2. The service is pinned with taskset to the first core, then to the first two
# (and so on up to CORES), each on a copy of one seeded session, in interleaved rounds; the load
# generator (and wrk) run unpinned. Prints req/s, p99 and ratios against one core.
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
if [ "${WRK:-1}" != 0 ] && ! command -v wrk >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } ||
        { echo "could not install wrk (apt-get install wrk); WRK=0 skips it" >&2; exit 1; }
fi
WORK=$(mktemp -d)
RUNS=$WORK/runs.jsonl
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# start CPUS DB [ENV...]: the service pinned to CPUS; sets ADDR and pid.
start() {
    local cpus=$1 db=$2 port
    shift 2
    port=$("$LOAD" free-port)
    ADDR=127.0.0.1:$port
    env HOST=127.0.0.1 PORT="$port" RUST_LOG=warn DATABASE_URL="sqlite://$db" "$@" \
        taskset -c "$cpus" "$SERVICE" >"$WORK/server.log" 2>&1 &
    pid=$!
    "$LOAD" wait --addr "$ADDR" --timeout 60
}
stop() { kill -TERM "$pid"; wait "$pid" || true; pid=""; }

start 0 "$WORK/deep.db"
"$LOAD" seed-prepare --addr "$ADDR" --session bench-deep
stop
"$LOAD" seed --db "$WORK/deep.db" --session bench-deep --events "$SEED_EVENTS"

wrk_run() { # wrk_run ID: req/s and p99 of first-page reads at $ADDR into $RUNS
    wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "http://$ADDR/sessions/bench-deep/events?limit=20" >"$WORK/$1.wrk"
    python3 - "$1" "$WORK/$1.wrk" >>"$RUNS" <<'PY'
import json, re, sys
text = open(sys.argv[2]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
print(json.dumps({"id": sys.argv[1], "rps": rps, "p99_ms": p99}))
PY
}

one() { # one ID CPUS [ENV...]
    local id=$1 cpus=$2
    shift 2
    cp "$WORK/deep.db" "$WORK/$id.db"
    start "$cpus" "$WORK/$id.db" "$@"
    "$LOAD" read --addr "$ADDR" --id "$id" --scenario "$id" --pid "$pid" --conns "$CONNS" \
        --duration "$SECS" --warmup 1 --threads 2 --backend sqlite --out "$RUNS" --kind GET \
        --session bench-deep --at first >/dev/null
    if [ "${WRK:-1}" != 0 ]; then wrk_run "wrk-$id"; fi
    stop
    rm -f "$WORK/$id.db"*
}

for r in $(seq "$ROUNDS"); do
    one "c1-fixed2-$r" 0 SQLITE_READER_THREADS=2
    for n in $(seq "$CORES"); do
        one "c$n-$r" "0-$((n - 1))"
    done
done

python3 - "$RUNS" "$ROUNDS" "$CORES" <<'PY'
import json, statistics, sys
runs = {r["id"]: r for r in map(json.loads, open(sys.argv[1]))}
rounds, cores = int(sys.argv[2]), int(sys.argv[3])
for gen, prefix in [("bench_load", ""), ("wrk", "wrk-")]:
    if f"{prefix}c1-1" not in runs:
        continue
    med = lambda name, f: statistics.median(runs[f"{prefix}{name}-{r}"][f] for r in range(1, rounds + 1))
    base = med("c1", "rps")
    print(f"{gen}: first-page reads, service pinned to N cores, medians of {rounds} rounds")
    print(f"  1 core, 2 readers (the old constant): {med('c1-fixed2', 'rps'):8.0f} req/s, p99 {med('c1-fixed2', 'p99_ms'):.2f} ms")
    for n in range(1, cores + 1):
        print(f"  {n} core(s), {n} reader(s) (default): {med(f'c{n}', 'rps'):8.0f} req/s ({med(f'c{n}', 'rps') / base:.2f}x one core), p99 {med(f'c{n}', 'p99_ms'):.2f} ms")
PY
