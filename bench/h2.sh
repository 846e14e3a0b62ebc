#!/usr/bin/env bash
# bench/h2.sh OLD_BINARY NEW_BINARY: two builds of the service over HTTP/2 (prior knowledge), back
# to back in interleaved pairs, each on a fresh store, measured by Debian's h2load (installed with
# apt-get when missing): GET /health, and the first page of a 20-event call. Prints each pair and
# the median new/old ratio of req/s. For "what did this change cost" on the HTTP/2 path, which
# bench/ab.sh (HTTP/1.1) does not reach.
#
# Settings (environment): PAIRS=4, BENCH_SECONDS=8, H2_CONNS=4, H2_STREAMS=32 (per connection).
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -eq 2 ] || { echo "usage: bench/h2.sh OLD_BINARY NEW_BINARY" >&2; exit 2; }
OLD=$(realpath "$1")
NEW=$(realpath "$2")
PAIRS=${PAIRS:-4}
SECS=${BENCH_SECONDS:-8}
CONNS=${H2_CONNS:-4}
STREAMS=${H2_STREAMS:-32}

cargo build --release --locked --example bench_load
LOAD=${CARGO_TARGET_DIR:-target}/release/examples/bench_load
if ! command -v h2load >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null; } ||
        { echo "could not install h2load (apt-get install nghttp2-client)" >&2; exit 1; }
fi
. bench/service.sh
RUNS=$WORK/runs.jsonl

# h2load_run ID URL: one run, its req/s appended to RUNS; every answer must be a 2xx.
h2load_run() {
    local text rps done ok
    text=$(h2load -c "$CONNS" -m "$STREAMS" -D "$SECS" --warm-up-time=1 "$2")
    rps=$(grep -oP 'finished in [\d.]+s, \K[\d.]+(?= req/s)' <<<"$text")
    done=$(grep -oP 'requests: .*, \K\d+(?= done)' <<<"$text")
    ok=$(grep -oP 'status codes: \K\d+(?= 2xx)' <<<"$text")
    if [ "$done" != "$ok" ]; then
        echo "$1: $ok of $done answers were 2xx" >&2
        exit 1
    fi
    echo "{\"id\": \"$1\", \"rps\": $rps, \"p99_ms\": 0}" >>"$RUNS"
}

for i in $(seq "$PAIRS"); do
    for side in old new; do
        bin=$OLD
        [ "$side" = new ] && bin=$NEW
        serve DATABASE_URL="sqlite://$WORK/$side-$i.db" -- "$bin"
        curl -fsS -o /dev/null -H 'Content-Type: application/json' \
            -d '{"sessionId": "s", "language": "en"}' "http://$ADDR/sessions"
        events=$(python3 -c 'import json; print(json.dumps({"events": [{"eventId": f"e{i}", "type": "user_speech", "payload": {"text": "hello there, I would like to check my order"}} for i in range(20)]}))')
        curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$events" \
            "http://$ADDR/sessions/s/events:batch"
        h2load_run "health-$side-$i" "http://$ADDR/health"
        h2load_run "read-$side-$i" "http://$ADDR/sessions/s/events?limit=20"
        stop
    done
done

# h2load reports no percentiles: the p99 columns read 0.
python3 bench/pairs.py "$RUNS" old new "HTTP/2 (h2load), new / old"
