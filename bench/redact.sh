#!/usr/bin/env bash
# bench/redact.sh: what redaction costs. One build of the service, run without REDACT and with
# REDACT=card,email,phone,ssn, back to back in interleaved pairs (off, on, off, on…), each on a
# fresh store, with the same input (every other event's text holds a card number, an address and
# a phone number, so the "on" runs really replace them): single-event ingest and batches of 20 by
# the project's load generator, and single-event ingest by an outside one (Debian's wrk, installed
# with apt-get when missing). Prints each pair and the median on/off ratios of req/s and p99.
#
# Settings (environment): PAIRS=5, BENCH_SECONDS=6, BENCH_CONNS=32, SQLITE_SYNCHRONOUS=full,
# WRK=1 (0 skips wrk), SERVICE_BIN (default: the release build of this tree).
set -euo pipefail
cd "$(dirname "$0")/.."

PAIRS=${PAIRS:-5}
SECS=${BENCH_SECONDS:-6}
CONNS=${BENCH_CONNS:-32}
SYNC=${SQLITE_SYNCHRONOUS:-full}
KINDS=card,email,phone,ssn

cargo build --release --locked --bin session-service --example bench_load
TARGET=${CARGO_TARGET_DIR:-target}/release
LOAD=$TARGET/examples/bench_load
SERVICE=$(realpath "${SERVICE_BIN:-$TARGET/session-service}")
. bench/wrk.sh
ensure_wrk
. bench/service.sh
RUNS=$WORK/runs.jsonl

# start DB REDACT: the service on a fresh store at DB, redacting REDACT; sets ADDR and pid.
start() { serve DATABASE_URL="sqlite://$1" REDACT="$2" SQLITE_SYNCHRONOUS="$SYNC"; }

# A new eventId per request; every other one says a card number, an address and a phone number.
cat >"$WORK/post.lua" <<'LUA'
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
request = function()
  n = n + 1
  local text = "hello, I would like to check my order"
  if n % 2 == 0 then
    text = text .. ". My card is 4111 1111 1111 1111, mail alex.morgan@example.com or call +1 415 555 0132."
  end
  return wrk.format("POST", "/sessions/wrk/events", {["Content-Type"] = "application/json"},
    '{"eventId":"w' .. tid .. '-' .. n .. '","type":"user_speech","payload":{"text":"' .. text .. '"}}')
end
LUA

for i in $(seq "$PAIRS"); do
    for side in off on; do
        kinds=""
        [ "$side" = on ] && kinds=$KINDS
        start "$WORK/ingest-$side-$i.db" "$kinds"
        "$LOAD" ingest --addr "$ADDR" --id "ingest-$side-$i" --scenario ingest --pid "$pid" \
            --conns "$CONNS" --duration "$SECS" --warmup 1 --threads 2 --backend sqlite \
            --out "$RUNS" --kind POST --sessions 1 --pii true >/dev/null
        stop
        start "$WORK/batch-$side-$i.db" "$kinds"
        "$LOAD" ingest --addr "$ADDR" --id "batch20-$side-$i" --scenario batch20 --pid "$pid" \
            --conns "$CONNS" --duration "$SECS" --warmup 1 --threads 2 --backend sqlite \
            --out "$RUNS" --kind POST --sessions 1 --batch 20 --pii true >/dev/null
        stop
        if [ "${WRK:-1}" != 0 ]; then
            start "$WORK/wrk-$side-$i.db" "$kinds"
            curl -fsS -o /dev/null -H 'Content-Type: application/json' \
                -d '{"sessionId":"wrk","language":"en"}' "http://$ADDR/sessions"
            wrk_run "$RUNS" "wrk-ingest-$side-$i" -s "$WORK/post.lua" "http://$ADDR"
            # The "on" store must hold no card number and redacted ones, the "off" one the
            # numbers as sent (the input had them).
            stored=$(curl -fsS "http://$ADDR/sessions/wrk/events?limit=100")
            case "$side:$stored" in
                on:*4111*) echo "REDACT=$KINDS stored a card number" >&2; exit 1 ;;
                on:*REDACTED:card*) ;;
                on:*) echo "REDACT=$KINDS redacted nothing" >&2; exit 1 ;;
                off:*REDACTED*) echo "without REDACT something was redacted" >&2; exit 1 ;;
                off:*4111*) ;;
                off:*) echo "the input held no card number" >&2; exit 1 ;;
            esac
            stop
        fi
    done
done

python3 bench/pairs.py "$RUNS" off on "REDACT=card,email,phone,ssn / no REDACT"
