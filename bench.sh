#!/usr/bin/env bash
# The benchmark: builds in release mode, then measures the service (embedded SQLite by default), a
# bare Axum baseline (no storage) and a durable baseline (only the durable SQLite insert and the raw
# page query) with the same load generator on loopback. Prints a table and writes JSON to
# bench-results/ (git-ignored). See bench/README.md.
#
# Settings (environment):
#   BENCH_SECONDS=10        measured seconds per scenario (after BENCH_WARMUP=1 s of warmup)
#   BENCH_CONNS=32          concurrent connections, one keep-alive HTTP/1.1 connection each
#   BENCH_SESSIONS=1000     sessions in the many-sessions ingest
#   BENCH_SEED_EVENTS=1000000  events in the long session (scenarios 3 to 5)
#   BENCH_MIX_EVENTS=20     events per call in the call-like mix
#   BENCH_BATCHES="20 100"  batch sizes of the batch-ingest scenarios (events:batch)
#   BENCH_CLIENT_THREADS=2  the load generator's runtime threads
#   BENCH_BACKEND=sqlite    or mongo, with MONGODB_URI=mongodb://HOST:PORT/?opts (each scenario
#                           uses its own database, bench_<stamp>_<scenario>); the long session is
#                           then seeded over HTTP with BENCH_MONGO_SEED_EVENTS=20000 events
#   BENCH_KEEP=1            keep the work directory (databases, server logs)
set -euo pipefail
cd "$(dirname "$0")"

SECS=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-1}
CONNS=${BENCH_CONNS:-32}
SESSIONS=${BENCH_SESSIONS:-1000}
SEED_EVENTS=${BENCH_SEED_EVENTS:-1000000}
MIX_EVENTS=${BENCH_MIX_EVENTS:-20}
BATCHES=${BENCH_BATCHES:-20 100}
THREADS=${BENCH_CLIENT_THREADS:-2}
BACKEND=${BENCH_BACKEND:-sqlite}
MONGO_SEED_EVENTS=${BENCH_MONGO_SEED_EVENTS:-20000}

log() { printf '[bench] %s\n' "$*" >&2; }

case "$BACKEND" in
    sqlite) ;;
    mongo)
        if [ -z "${MONGODB_URI:-}" ]; then
            log "BENCH_BACKEND=mongo needs MONGODB_URI=mongodb://HOST:PORT/?options"
            exit 2
        fi
        SEED_EVENTS=$MONGO_SEED_EVENTS
        ;;
    *) log "BENCH_BACKEND must be sqlite or mongo, not $BACKEND"; exit 2 ;;
esac

log "building (release)"
cargo build --release --locked --bin session-service --example bench_load --example bench_baseline \
    --example bench_durable
TARGET=${CARGO_TARGET_DIR:-target}/release
SERVICE=$TARGET/session-service
BASELINE=$TARGET/examples/bench_baseline
DURABLE=$TARGET/examples/bench_durable
LOAD=$TARGET/examples/bench_load

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench-results
WORK=bench-results/work-$STAMP
mkdir -p "$WORK"
RUNS=bench-results/runs-$STAMP.jsonl
: >"$RUNS"

server_pid=""
stop_server() {
    if [ -n "$server_pid" ]; then
        if kill -0 "$server_pid" 2>/dev/null; then
            kill -TERM "$server_pid" 2>/dev/null || true
            wait "$server_pid" 2>/dev/null || true
        fi
        server_pid=""
    fi
}
cleanup() {
    stop_server
    if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

# start_server LOGNAME COMMAND [ENV=VALUE...]: starts it on a free loopback port; sets ADDR.
start_server() {
    local name=$1 cmd=$2
    shift 2
    local port
    port=$("$LOAD" free-port)
    ADDR=127.0.0.1:$port
    env HOST=127.0.0.1 PORT="$port" RUST_LOG=warn LOG_FORMAT=json "$@" "$cmd" \
        >"$WORK/$name.log" 2>&1 &
    server_pid=$!
    if ! "$LOAD" wait --addr "$ADDR" --timeout 60 || ! kill -0 "$server_pid" 2>/dev/null; then
        log "$name did not start; its log:"
        tail -n 30 "$WORK/$name.log" >&2 || true
        exit 1
    fi
}

# The service on a store: sqlite file (fresh unless it exists) or a Mongo database of that name.
start_service() {
    local name=$1 store=$2
    shift 2
    local url
    if [ "$BACKEND" = sqlite ]; then
        url="sqlite://$WORK/$store.db"
    else
        local uri=${MONGODB_URI%%\?*} opts=""
        case "$MONGODB_URI" in *\?*) opts="?${MONGODB_URI#*\?}" ;; esac
        local rest=${uri#*://}
        url="${uri%%://*}://${rest%%/*}/bench_${STAMP}_$store$opts"
    fi
    start_server "$name" "$SERVICE" DATABASE_URL="$url" "$@"
}

# load ID "SCENARIO" SUBCOMMAND [ARGS...]: one measured run against the server at $ADDR.
load() {
    local id=$1 scenario=$2 sub=$3
    shift 3
    "$LOAD" "$sub" --addr "$ADDR" --id "$id" --scenario "$scenario" --pid "$server_pid" \
        --conns "$CONNS" --duration "$SECS" --warmup "$WARMUP" --threads "$THREADS" \
        --backend "$BACKEND" --out "$RUNS" "$@"
}

log "scenarios: ${SECS}s each after ${WARMUP}s warmup, $CONNS connections, backend $BACKEND"

# --- the baseline: same routes, no storage --------------------------------------------------------
start_server baseline "$BASELINE"
load base-post "baseline: POST event" ingest --target baseline --kind POST --sessions 1 --verify false
load base-get "baseline: GET page (20 events)" read --target baseline --kind GET --session bench-baseline
load base-mix "baseline: call mix" mix --target baseline --kind MIX --events-per-call "$MIX_EVENTS"
for n in $BATCHES; do
    load "base-batch$n" "baseline: POST batch of $n events" ingest --target baseline --kind POST \
        --sessions 1 --batch "$n" --verify false
done
stop_server

# --- the durable baseline: the same ingest routes, only the durable SQLite work -------------------
start_server durable-post "$DURABLE" DATABASE_PATH="$WORK/durable-post.db"
load dur-post "durable: POST event" ingest --target durable --kind POST --sessions 1
stop_server
for n in $BATCHES; do
    start_server "durable-batch$n" "$DURABLE" DATABASE_PATH="$WORK/durable-batch$n.db"
    load "dur-batch$n" "durable: POST batch of $n events" ingest --target durable --kind POST \
        --sessions 1 --batch "$n"
    stop_server
done

# --- 1, 2, 6 on an empty store --------------------------------------------------------------------
start_service ingest-1 ingest-1
load ingest-1 "1 ingest: 1 session, empty store" ingest --kind POST --sessions 1
stop_server

if [ "$BACKEND" = sqlite ]; then
    start_service ingest-1-normal ingest-1-normal SQLITE_SYNCHRONOUS=normal
    load ingest-1-normal "1' ingest: 1 session, synchronous=normal" ingest --kind POST --sessions 1
    stop_server
fi

for n in $BATCHES; do
    start_service "ingest-batch$n" "ingest-batch$n"
    load "ingest-batch$n" "1b ingest: batches of $n events, 1 session" ingest --kind POST --sessions 1 \
        --batch "$n"
    stop_server
done

start_service ingest-many ingest-many
load ingest-many "2 ingest: $SESSIONS sessions" ingest --kind POST --sessions "$SESSIONS"
stop_server

start_service mix mix
load mix "6 call mix: create, ${MIX_EVENTS} events, read, complete" mix --kind MIX --events-per-call "$MIX_EVENTS"
stop_server

# --- the long session -----------------------------------------------------------------------------
SEEDED=$(awk -v n="$SEED_EVENTS" 'BEGIN { if (n >= 1000000 && n % 1000000 == 0) printf "%dM", n / 1000000; else if (n >= 1000 && n % 1000 == 0) printf "%dk", n / 1000; else print n }')
if [ "$BACKEND" = sqlite ]; then
    # The service creates and migrates the file and stores the session and its event 1 itself; the
    # seeder checks its own rows against that event, then inserts events 2..N in one transaction.
    log "seeding a session of $SEED_EVENTS events"
    start_service seed deep
    "$LOAD" seed-prepare --addr "$ADDR" --session bench-deep
    stop_server
    "$LOAD" seed --db "$WORK/deep.db" --session bench-deep --events "$SEED_EVENTS"
    NOTE="seeded in SQLite"
else
    log "MongoDB: seeding the long session with $SEED_EVENTS events over HTTP (not 1M: too slow)"
    start_service seed deep
    "$LOAD" seed-prepare --addr "$ADDR" --session bench-deep
    "$LOAD" ingest --addr "$ADDR" --scenario seed --session bench-deep --requests $((SEED_EVENTS - 1)) \
        --conns "$CONNS" --threads "$THREADS" --verify true
    stop_server
    NOTE="seeded over HTTP"
fi

start_service read-first deep
load read-first "3 read: first page, $SEEDED-event session" read --kind GET --session bench-deep --at first --note "$NOTE"
stop_server

if [ "$BACKEND" = sqlite ]; then
    # The durable baseline reads a copy of the very same database (it uses the service's schema).
    cp "$WORK/deep.db" "$WORK/durable-deep.db"
    start_server durable-read "$DURABLE" DATABASE_PATH="$WORK/durable-deep.db"
    load dur-get "durable: GET first page, $SEEDED-event session" read --target durable --kind GET \
        --session bench-deep --at first --note "$NOTE"
    stop_server
fi

start_service read-deep-cursor deep
load read-deep-cursor "4 read: page near the end, by cursor" read --kind GET --session bench-deep --at cursor-near-end --note "$NOTE"
stop_server

start_service read-deep-page deep
load read-deep-page "4 read: page near the end, by page=N" read --kind GET --session bench-deep --at page-near-end --note "$NOTE"
stop_server

start_service ingest-deep deep
load ingest-deep "5 ingest: into the $SEEDED-event session" ingest --kind POST --session bench-deep --note "$NOTE"
stop_server

# --- report -------------------------------------------------------------------------------------
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
dirty=$([ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo true || echo false)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
echo
"$LOAD" report --runs "$RUNS" --out "bench-results/bench-$STAMP.json" \
    --meta-date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --meta-nproc "$(nproc)" --meta-cpu "${cpu:-unknown}" \
    --meta-commit "$commit" --meta-dirty "$dirty" --meta-kernel "$(uname -r)" \
    --meta-rustc "$(rustc --version 2>/dev/null || echo unknown)" \
    --meta-loadavg "$(cut -d' ' -f1-3 /proc/loadavg)" --meta-backend "$BACKEND" \
    --meta-seconds "$SECS" --meta-warmup "$WARMUP" --meta-conns "$CONNS" \
    --meta-seed-events "$SEED_EVENTS" --meta-seed "$NOTE" --meta-client-threads "$THREADS"
cp "bench-results/bench-$STAMP.json" bench-results/latest.json
echo
log "wrote bench-results/bench-$STAMP.json (and latest.json); raw runs in $RUNS"
