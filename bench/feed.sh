#!/usr/bin/env bash
# bench/feed.sh: what the change feed delivers, on the embedded store (release build).
#   1. NDJSON read rate: N events ingested in batches of 100, then the whole feed read as NDJSON
#      (`GET /changes`, Accept: application/x-ndjson) by curl; changes per second.
#   2. Delivery latency: from an append's 201 to the SSE frame of its change, one append at a time
#      (RATE per second for SECS seconds), with the stream on the same instance and on a second
#      instance (another process on the same SQLite file); p50 / p99 / max.
# Settings (environment): EVENTS=500000, RATE=50, SECS=20, SERVICE_BIN (default: this tree's
# release build).
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-500000}
RATE=${RATE:-50}
SECS=${SECS:-20}
cargo build --release --locked --bin session-service --example bench_load
TARGET=${CARGO_TARGET_DIR:-target}/release
LOAD=$TARGET/examples/bench_load
SERVICE=$(realpath "${SERVICE_BIN:-$TARGET/session-service}")
WORK=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

start() { # start PORT: the service on the shared store
    env HOST=127.0.0.1 PORT="$1" RUST_LOG=warn DATABASE_URL="sqlite://$WORK/feed.db" \
        STREAM_POLL_INTERVAL_MS=200 "$SERVICE" >"$WORK/server-$1.log" 2>&1 &
    pids+=($!)
    "$LOAD" wait --addr "127.0.0.1:$1" --timeout 60
}

A=$("$LOAD" free-port)
start "$A"
echo "[feed] ingesting $EVENTS events in batches of 100"
"$LOAD" ingest --addr "127.0.0.1:$A" --id seed --scenario seed --conns 8 --threads 2 \
    --requests $((EVENTS / 100)) --batch 100 --kind POST --sessions 100 --backend sqlite >/dev/null
python3 - "$A" <<'PY'
import subprocess, sys, time
port = sys.argv[1]
t0 = time.monotonic()
out = subprocess.run(["curl", "-sS", "-H", "Accept: application/x-ndjson", f"http://127.0.0.1:{port}/changes"],
                     capture_output=True, check=True).stdout
dt = time.monotonic() - t0
lines = out.count(b"\n")
print(f"ndjson: {lines} changes in {dt:.2f} s = {lines / dt:,.0f} changes/s ({len(out) / dt / 1e6:.0f} MB/s)")
PY

B=$("$LOAD" free-port)
start "$B"
python3 - "$A" "$B" "$RATE" "$SECS" <<'PY'
import http.client, json, sys, threading, time
a, b, rate, secs = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])

def follow(port, got, ready):
    conn = http.client.HTTPConnection("127.0.0.1", int(port))
    conn.request("GET", "/changes?after=now&types=event.appended", headers={"Accept": "text/event-stream"})
    resp = conn.getresponse()
    ready.set()
    while True:
        line = resp.fp.readline()
        if not line:
            return
        if line.startswith(b"data: "):
            change = json.loads(line[6:])
            got[change["data"]["eventId"]] = time.monotonic()

def run(label, stream_port, write_port, session):
    got, ready = {}, threading.Event()
    threading.Thread(target=follow, args=(stream_port, got, ready), daemon=True).start()
    ready.wait(10)
    time.sleep(0.5)
    conn = http.client.HTTPConnection("127.0.0.1", int(write_port))
    def post(path, body):
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = conn.getresponse(); r.read(); return r.status
    assert post("/sessions", {"sessionId": session, "language": "en"}) == 201
    acked = {}
    n = int(rate * secs)
    for i in range(n):
        eid = f"{session}-{i}"
        status = post(f"/sessions/{session}/events", {"eventId": eid, "type": "user_speech", "payload": {"text": "hello"}})
        assert status == 201, status
        acked[eid] = time.monotonic()
        time.sleep(1 / rate)
    deadline = time.monotonic() + 5
    while len([e for e in acked if e in got]) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    lat = sorted(max(0.0, got[e] - acked[e]) * 1000 for e in acked if e in got)
    missing = n - len(lat)
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    print(f"sse {label}: {len(lat)} changes, missing {missing}; from 201 to frame p50 {pct(0.5):.1f} ms, "
          f"p99 {pct(0.99):.1f} ms, max {lat[-1]:.1f} ms")

run("same instance", a, a, "lat-same")
run("across instances", b, a, "lat-across")
PY
