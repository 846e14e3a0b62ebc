#!/usr/bin/env bash
# Instruction counts per request, which do not depend on machine noise: the service (or any
# binary given) runs under valgrind's callgrind on an embedded SQLite store; a fixed number of
# requests is measured after an uninstrumented warmup. Prints instructions per request in total,
# in the tokio workers (HTTP, validation, service) and in the SQLite writer thread, then the
# functions with the most instructions (inclusive). See BENCHMARKS.md, "Profile".
#
#   bench/profile.sh [SERVICE_BINARY]
#
# Single-event ingest only: reads go through the reader threads, which under valgrind (one thread
# runs at a time) take minutes per thousand requests; profile reads with `perf` instead.
#
# Settings (environment): PROFILE_REQUESTS=4000, PROFILE_CONNS=4, PROFILE_TOP=40,
# PROFILE_OUT=bench-results/callgrind.<mode>.out. Needs valgrind (`apt-get install valgrind`).
# A release build with line tables attributes costs to source lines:
#   CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release
# Callgrind runs the program ~50 times slower, so the writer's group commits are smaller than in
# a real run: compare the tokio side across builds; read the writer's share as an upper bound.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=ingest
TARGET=${CARGO_TARGET_DIR:-target}/release
SERVICE=${1:-$TARGET/session-service}
LOAD=$TARGET/examples/bench_load
N=${PROFILE_REQUESTS:-4000}
CONNS=${PROFILE_CONNS:-4}
TOP=${PROFILE_TOP:-40}
OUT=${PROFILE_OUT:-bench-results/callgrind.$MODE.out}

command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 2; }
[ -x "$LOAD" ] || cargo build --release --locked --example bench_load
mkdir -p "$(dirname "$OUT")"
rm -f "$OUT" "$OUT"-*
WORK=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

port=$("$LOAD" free-port)
ADDR=127.0.0.1:$port
# vgdb (which callgrind_control uses) names its pipes after USER and HOST; HOST is also the
# service's listen address, so both sides get the same one.
export USER=${USER:-root} LOGNAME=${LOGNAME:-root}
env HOST=127.0.0.1 PORT="$port" RUST_LOG=warn DATABASE_URL="sqlite://$WORK/profile.db" \
    valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes \
    --callgrind-out-file="$OUT" "$SERVICE" \
    >"$WORK/service.log" 2>&1 &
pid=$!
"$LOAD" wait --addr "$ADDR" --timeout 120

common=(--addr "$ADDR" --conns "$CONNS" --threads 1)
"$LOAD" ingest "${common[@]}" --scenario warmup --requests 500 --kind POST --sessions 1 \
    --verify false >/dev/null
measure=(ingest "${common[@]}" --scenario measured --requests "$N" --kind POST --sessions 1
    --verify false)
HOST=127.0.0.1 callgrind_control -i on "$pid" >/dev/null 2>&1
"$LOAD" "${measure[@]}" | tail -n 1
HOST=127.0.0.1 callgrind_control -i off "$pid" >/dev/null 2>&1
kill -TERM "$pid"
wait "$pid" || true
pid=""

# One file per thread ($OUT-01, …): the writer is the thread that runs the writer loop, the tokio
# workers are those that run the scheduler (what the compiler inlines cannot move a thread).
annotate() { callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$1" 2>/dev/null; }
total=0 tokio=0 writer=0
tokio_files=()
for f in "$OUT"-*; do
    listing=$(annotate "$f")
    t=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' <<<"$listing")
    [[ $t =~ ^[0-9]+$ ]] || continue
    total=$((total + t))
    if grep -qE 'writer::run|run_writer' <<<"$listing"; then
        writer=$((writer + t))
    elif grep -q 'worker::Context::run' <<<"$listing"; then
        tokio=$((tokio + t))
        tokio_files+=("$f")
    fi
done
per_request() { awk -v v="$1" -v n="$N" 'BEGIN { printf "%8.1f k", v / n / 1000 }'; }
echo "total        $(per_request "$total") instructions per request"
echo "tokio side   $(per_request "$tokio")"
echo "writer       $(per_request "$writer")"
echo
echo "tokio side, inclusive k/request  function"
for f in "${tokio_files[@]}"; do annotate "$f" | grep -v '=>'; done |
    awk -v n="$N" '
        /^ *[0-9,]+ \(/ && $0 !~ /PROGRAM TOTALS/ {
            v = $1; gsub(",", "", v); $1 = ""; $2 = ""
            sub(/^ +/, ""); sub(/ \[[^]]*\]$/, "")
            sub(/^.*\/registry\/src\/[^\/]+\//, ""); sub(/^\/rustc\/[0-9a-f]+\//, "")
            sum[$0] += v
        }
        END { for (k in sum) printf "%8.1f  %s\n", sum[k] / n / 1000, substr(k, 1, 150) }' |
    sort -rn | head -n "$TOP"
echo "callgrind data: $OUT-* (one file per thread; callgrind_annotate FILE)"
