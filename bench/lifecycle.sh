#!/usr/bin/env bash
# Measures the two lifecycle operations the design promises are bounded on a long call, on the
# embedded store: exporting a 1,000,000-event session as NDJSON (the service's peak RSS while it
# streams, which must not grow with the session) and erasing it (how long until every event is
# removed from storage, while the tombstone answers 410 from the first moment).
#
#   cargo build --release --bins --examples && bench/lifecycle.sh
#
# Settings: LIFECYCLE_EVENTS (1000000), BENCH_KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${LIFECYCLE_EVENTS:-1000000}
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release
SERVICE=$TARGET/session-service
LOAD=$TARGET/examples/bench_load
for bin in "$SERVICE" "$LOAD"; do
    [ -x "$bin" ] || { echo "missing $bin: run cargo build --release --bins --examples" >&2; exit 1; }
done
WORK=$(mktemp -d)
PORT=$("$LOAD" free-port)
ADDR=127.0.0.1:$PORT
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    [ "${BENCH_KEEP:-0}" = 1 ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$pid/status"; }

PORT=$PORT DATABASE_URL="sqlite://$WORK/long.db" RUST_LOG=warn "$SERVICE" >"$WORK/service.log" 2>&1 &
pid=$!
"$LOAD" wait --addr "$ADDR"
"$LOAD" seed-prepare --addr "$ADDR" --session long
"$LOAD" seed --db "$WORK/long.db" --session long --events "$EVENTS"
echo "service RSS before the export: $(kib VmRSS) KiB (peak so far $(kib VmHWM) KiB)"

start=$(date +%s.%N)
lines=$(curl -sS -H 'Accept: application/x-ndjson' "http://$ADDR/sessions/long/events" | wc -l)
end=$(date +%s.%N)
echo "export: $lines lines in $(echo "$end - $start" | bc) s; service peak RSS $(kib VmHWM) KiB, RSS after $(kib VmRSS) KiB"
[ "$lines" = "$EVENTS" ] || { echo "expected $EVENTS lines" >&2; exit 1; }

curl -sS -o /dev/null -X POST -H 'content-type: application/json' "http://$ADDR/sessions" \
    -d '{"sessionId":"other","language":"en"}'
start=$(date +%s.%N)
code=$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE "http://$ADDR/sessions/long")
answered=$(date +%s.%N)
after=$(curl -sS -o /dev/null -w '%{http_code}' "http://$ADDR/sessions/long")
echo "DELETE answered $code in $(echo "$answered - $start" | bc) s; GET right after: $after"
n=0 worst=0
while :; do
    # Another call keeps writing while the erasure runs: its slowest answer is the stall.
    n=$((n + 1))
    t=$(curl -sS -o /dev/null -w '%{time_total}' -X POST -H 'content-type: application/json' \
        "http://$ADDR/sessions/other/events" -d "{\"eventId\":\"e$n\",\"type\":\"system\",\"payload\":{}}")
    worst=$(echo "if ($t > $worst) $t else $worst" | bc)
    left=$(python3 -c 'import sqlite3,sys; c=sqlite3.connect("file:"+sys.argv[1]+"?mode=ro", uri=True); print(c.execute("SELECT count(*) FROM events WHERE session_id = ?", ("long",)).fetchone()[0])' "$WORK/long.db")
    [ "$left" = 0 ] && break
done
end=$(date +%s.%N)
echo "erasure: all $EVENTS events removed $(echo "$end - $start" | bc) s after the DELETE"
echo "meanwhile $n appends to another call, the slowest answered in $worst s"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
    "http://$ADDR/sessions" -d '{"sessionId":"after","language":"en"}')
echo "a create after the erasure: $code"
