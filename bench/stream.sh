#!/usr/bin/env bash
# Measures live transcripts (examples/bench_stream.rs), release build:
#   1. the service's RSS holding 1,000 idle streams (over 100 sessions), SQLite: one HTTP/1.1
#      connection per stream, then 100 streams per HTTP/2 connection;
#   2. 1,000 streams following one call: the delay from a 201 to the last of them (HTTP/1.1,
#      then HTTP/2);
#   3. the delay from a 201 to the event reaching a subscriber: same instance, and a second
#      process on the same SQLite file (found by polling, STREAM_POLL_INTERVAL_MS);
#   4. with MONGODB_URI set: the same instance and two instances on one database (change stream).
#
#   cargo build --release --bins --examples && bench/stream.sh
#
# Settings: STREAM_BENCH_STREAMS (1000), STREAM_BENCH_EVENTS (200), BENCH_KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."

STREAMS=${STREAM_BENCH_STREAMS:-1000}
EVENTS=${STREAM_BENCH_EVENTS:-200}
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release
SERVICE=$TARGET/session-service
LOAD=$TARGET/examples/bench_load
STREAM=$TARGET/examples/bench_stream
for bin in "$SERVICE" "$LOAD" "$STREAM"; do
    [ -x "$bin" ] || { echo "missing $bin: run cargo build --release --bins --examples" >&2; exit 1; }
done
WORK=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    [ "${BENCH_KEEP:-0}" = 1 ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

# start NAME DATABASE_URL: a service on a free port; sets ADDR and PID.
start() {
    local port
    port=$("$LOAD" free-port)
    # Room for every stream (streams may take all but a tenth of the connections).
    PORT=$port DATABASE_URL="$2" MAX_CONNECTIONS=$((STREAMS * 2 + 100)) MAX_STREAMS=$((STREAMS * 2)) \
        RUST_LOG=warn "$SERVICE" >"$WORK/$1.log" 2>&1 &
    PID=$!
    pids+=("$PID")
    ADDR=127.0.0.1:$port
    "$LOAD" wait --addr "$ADDR"
}

echo "== SQLite: $STREAMS idle streams"
start idle "sqlite://$WORK/idle.db"
"$STREAM" idle --addr "$ADDR" --streams "$STREAMS" --sessions 100 --pid "$PID"
H2=$(( (STREAMS + 99) / 100 ))
echo "== SQLite: $STREAMS idle streams over $H2 HTTP/2 connections"
start idle2 "sqlite://$WORK/idle2.db"
"$STREAM" idle --addr "$ADDR" --streams "$STREAMS" --sessions 100 --pid "$PID" --http2 "$H2"

echo "== SQLite: $STREAMS streams following one call, delay from the 201 to the last ($((EVENTS / 2)) events)"
start fan "sqlite://$WORK/fan.db"
"$STREAM" fanout --addr "$ADDR" --streams "$STREAMS" --events "$((EVENTS / 2))"
echo "== the same over $H2 HTTP/2 connections"
"$STREAM" fanout --addr "$ADDR" --streams "$STREAMS" --events "$((EVENTS / 2))" --http2 "$H2"

echo "== SQLite: delay from the 201 to the subscriber, same instance ($EVENTS events)"
start a "sqlite://$WORK/shared.db"
A=$ADDR
"$STREAM" latency --write "$A" --read "$A" --events "$EVENTS"
echo "== SQLite: written by one process, streamed by another on the same file (polled every 1000 ms)"
start b "sqlite://$WORK/shared.db"
"$STREAM" latency --write "$A" --read "$ADDR" --events "$((EVENTS / 4))" --gap-ms 0

if [ -n "${MONGODB_URI:-}" ]; then
    db="bench_stream_$(date +%s)"
    uri=$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$MONGODB_URI" "$db")
    echo "== MongoDB ($uri): same instance"
    start ma "$uri"
    MA=$ADDR
    "$STREAM" latency --write "$MA" --read "$MA" --events "$EVENTS"
    echo "== MongoDB: written through one instance, streamed by another (change stream)"
    start mb "$uri"
    "$STREAM" latency --write "$MA" --read "$ADDR" --events "$EVENTS"
fi
