# bench/service.sh, sourced by the bench scripts that run one service at a time, once they have
# set LOAD (bench_load: it finds a free port and waits for /ready) and SERVICE (the binary):
# WORK, a temporary folder removed on exit; serve and stop. A script's other processes (a
# receiver) go in OTHERS, and are stopped on exit too.

WORK=$(mktemp -d)
pid=""
OTHERS=()
cleanup() {
    local p
    for p in $pid "${OTHERS[@]}"; do
        if kill -0 "$p" 2>/dev/null; then kill -TERM "$p"; wait "$p" 2>/dev/null || true; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# serve [NAME=VALUE...] [-- COMMAND...]: COMMAND ($SERVICE unless given) with that environment,
# on a fresh loopback port, its output in $WORK/server.log; waits until it is ready, and sets
# ADDR and pid.
serve() {
    local vars=() port
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        vars+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift
    [ $# -gt 0 ] || set -- "$SERVICE"
    port=$("$LOAD" free-port)
    ADDR=127.0.0.1:$port
    env HOST=127.0.0.1 PORT="$port" RUST_LOG=warn "${vars[@]}" "$@" >"$WORK/server.log" 2>&1 &
    pid=$!
    "$LOAD" wait --addr "$ADDR" --timeout 60
}

# stop: SIGTERM to what serve started, and wait for it to exit.
stop() {
    kill -TERM "$pid"
    wait "$pid" || true
    pid=""
}
