#!/usr/bin/env bash
# Single-event ingest, the service against the durable baseline, in interleaved pairs: durable,
# service, durable, service… each on a fresh store, with the same load generator. The disk's sync
# latency drifts from minute to minute (the same durable binary has measured 27k and 35k req/s a
# minute apart), so one run of each, minutes apart as in ./bench.sh, can say little about a ratio
# near 1; pairs taken back to back, and their median, can. Prints each pair and the median ratio.
#
# Settings (environment): PAIRS=5, BENCH_SECONDS=6, BENCH_CONNS=32, SQLITE_SYNCHRONOUS=full,
# SERVICE_BIN (default: the release build of this tree; set it to measure another build).
# (the service's; the durable baseline always syncs fully).
set -euo pipefail
cd "$(dirname "$0")/.."

PAIRS=${PAIRS:-5}
SECS=${BENCH_SECONDS:-6}
CONNS=${BENCH_CONNS:-32}
SYNC=${SQLITE_SYNCHRONOUS:-full}

cargo build --release --locked --bin session-service --example bench_load --example bench_durable
TARGET=${CARGO_TARGET_DIR:-target}/release
LOAD=$TARGET/examples/bench_load
SERVICE=$(realpath "${SERVICE_BIN:-$TARGET/session-service}")
. bench/service.sh
RUNS=$WORK/runs.jsonl

# one ID TARGET COMMAND [NAME=VALUE...]: one measured ingest run against a fresh server.
one() {
    local id=$1 target=$2 cmd=$3
    shift 3
    serve "$@" -- "$cmd"
    "$LOAD" ingest --addr "$ADDR" --id "$id" --scenario "$id" --pid "$pid" \
        --conns "$CONNS" --duration "$SECS" --warmup 1 --threads 2 --backend sqlite \
        --out "$RUNS" --kind POST --sessions 1 --target "$target" >/dev/null
    stop
}

for i in $(seq "$PAIRS"); do
    one "durable-$i" durable "$TARGET/examples/bench_durable" DATABASE_PATH="$WORK/d$i.db"
    one "service-$i" service "$SERVICE" DATABASE_URL="sqlite://$WORK/s$i.db" \
        SQLITE_SYNCHRONOUS="$SYNC"
done

python3 - "$RUNS" "$SYNC" <<'PY'
import json, statistics, sys
runs = {r["id"]: r for r in map(json.loads, open(sys.argv[1]))}
pairs = sorted({k.split("-")[1] for k in runs}, key=int)
ratios = []
print(f"single-event ingest, service (synchronous={sys.argv[2]}) / durable baseline, pairs back to back")
print(f"{'pair':>4} {'durable req/s':>14} {'service req/s':>14} {'ratio':>6} {'service p99':>12} {'errors':>7} "
      f"{'CPU us/req dur':>15} {'svc':>5} {'check':>6}")
for p in pairs:
    d, s = runs[f"durable-{p}"], runs[f"service-{p}"]
    ratio = s["rps"] / d["rps"]
    ratios.append(ratio)
    ok = all(r.get("check", {}).get("ok", True) for r in (d, s))
    print(f"{p:>4} {d['rps']:14.0f} {s['rps']:14.0f} {ratio:6.2f} {s['p99_ms']:9.2f} ms {s['errors']:7d} "
          f"{d['server_cpu_us_per_req']:15.1f} {s['server_cpu_us_per_req']:5.1f} {'ok' if ok else 'FAIL':>6}")
print(f"median ratio {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")
PY
