#!/usr/bin/env bash
# bench/stats.sh [BINARY]: GET /stats's latency on the embedded store at scale (issue 24's goal:
# a 30-day, daily, grouped query over 1,000,000 sessions answers with p99 <= 200 ms).
#
# Seeds SESSIONS (default 1,000,000) sessions into a new SQLite file with examples/bench_stats.rs,
# through the store's own write path (create, then end: whatever the store keeps for the stats
# is kept as the service would), started over the 30 days before UNTIL (2026-11-01T00:00:00Z);
# the calls still going at the window's end left open, no events (see the example's header for the distributions). Then starts
# the service on that file and measures, each with Debian's wrk (one connection, so each latency
# is one query alone; --latency for the tail) and with a plain sequential Python client (urllib,
# 200 queries): (a) the 30 days, daily, grouped by endedReason, in Europe/Paris (the goal's
# query; the window spans the end of summer time); (b) the same without groupBy; (c) the last 7
# days, hourly, in Asia/Kolkata (+05:30); (d) 30 days daily by metadata.campaign (20 values);
# (e) 30 days daily by status. Prints for each query its buckets and totals.calls (the 30-day
# queries cover every seeded session: totals.calls = SESSIONS), req/s and p50/p99, and the
# service's peak RSS (VmHWM) so far.
#
# Settings (environment): SESSIONS=1000000, UNTIL=2026-11-01T00:00:00Z, BENCH_SECONDS=10,
# SQLITE_SYNCHRONOUS=normal (seeding speed only; stats queries do not write), WRK=0 (skip wrk),
# DB=path (keep the seeded database there and, when it exists already, measure it without
# seeding again; the queries then use UNTIL as given now, so keep it as it was seeded).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=$(realpath "${1:-${CARGO_TARGET_DIR:-target}/release/session-service}")
SESSIONS=${SESSIONS:-1000000}
UNTIL=${UNTIL:-2026-11-01T00:00:00Z}
SECS=${BENCH_SECONDS:-10}
. bench/wrk.sh
ensure_wrk
WORK=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

DB=${DB:-$WORK/stats.db}
if [ ! -e "$DB" ]; then
    cargo build --release --locked --example bench_stats
    SQLITE_SYNCHRONOUS="${SQLITE_SYNCHRONOUS:-normal}" \
        "${CARGO_TARGET_DIR:-target}/release/examples/bench_stats" \
        --db "$DB" --sessions "$SESSIONS" --until "$UNTIL" --days 30
else
    echo "measuring $DB as it is (seeded before; SESSIONS and UNTIL are taken as given now)"
fi
echo "database: $(du -sh "$DB" | cut -f1) ($DB)"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$port
env HOST=127.0.0.1 PORT="$port" RUST_LOG=warn DATABASE_URL="sqlite://$DB" \
    "$BIN" >"$WORK/service.log" 2>&1 &
pid=$!
ready=0
for _ in $(seq 1 600); do
    if curl -fsS "http://$ADDR/ready" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if ((!ready)); then
    echo "the service did not become ready; its log:" >&2
    cat "$WORK/service.log" >&2
    exit 1
fi

peak_rss() { awk '/^VmHWM:/ {printf "%.0f MiB", $2 / 1024}' "/proc/$pid/status"; }

# The windows: the 30 seeded days, and the last 7 of them.
read -r FROM30 FROM7 < <(python3 - "$UNTIL" <<'EOF'
import datetime, sys
until = datetime.datetime.fromisoformat(sys.argv[1].replace("Z", "+00:00"))
fmt = lambda t: t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
print(fmt(until - datetime.timedelta(days=30)), fmt(until - datetime.timedelta(days=7)))
EOF
)

# sequential PATH [N]: N (200) queries one after another (urllib, a connection each); the first
# answer's shape, then p50/p99/max. Exits non-zero (printing the answer) unless every answer is a 200.
sequential() {
    python3 - "$ADDR" "$1" "${2:-200}" <<'EOF'
import json, sys, time, urllib.error, urllib.request
url = f"http://{sys.argv[1]}{sys.argv[2]}"
times, first, n = [], None, int(sys.argv[3])
for i in range(n):
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        sys.exit(f"   ERROR: {e.code} {e.read()[:500].decode(errors='replace')}")
    times.append((time.perf_counter() - t) * 1000)
    if first is None:
        first = json.loads(body)
groups = {b["group"] for b in first["buckets"]}
print(f"   answer: {len(first['buckets'])} buckets ({len(first['buckets']) // max(len(groups), 1)} steps"
      f" x {len(groups)} groups), totals.calls {first['totals']['calls']}, totals.ended"
      f" {first['totals']['ended']}, activeNow {first['activeNow']}, {len(body)} bytes")
ranked = sorted(times)
print(f"   python: first {times[0]:.1f} ms; then p50 {ranked[(n - 1) // 2]:.1f} ms,"
      f" p99 {ranked[max(0, -(-99 * n // 100) - 1)]:.1f} ms, max {max(times):.1f} ms ({n} sequential queries)")
EOF
}

failed=0
for spec in "a) 30 days, daily, by endedReason, Europe/Paris (the goal)|from=$FROM30&to=$UNTIL&bucket=day&tz=Europe/Paris&groupBy=endedReason" \
            "b) 30 days, daily, no groupBy, Europe/Paris|from=$FROM30&to=$UNTIL&bucket=day&tz=Europe/Paris" \
            "c) 7 days, hourly, no groupBy, Asia/Kolkata|from=$FROM7&to=$UNTIL&bucket=hour&tz=Asia/Kolkata" \
            "d) 30 days, daily, by metadata.campaign, Europe/Paris (reads every call: 5 queries, no wrk)|from=$FROM30&to=$UNTIL&bucket=day&tz=Europe/Paris&groupBy=metadata.campaign|5" \
            "e) 30 days, daily, by status, Europe/Paris|from=$FROM30&to=$UNTIL&bucket=day&tz=Europe/Paris&groupBy=status"; do
    IFS='|' read -r name query count <<<"$spec"
    path="/stats?$query"
    echo
    echo "== $name: GET $path"
    if ! sequential "$path" "${count:-200}"; then failed=1; continue; fi
    if [ "${WRK:-1}" != 0 ] && [ -z "$count" ]; then
        wrk -t1 -c1 -d"${SECS}s" --timeout 60s --latency "http://$ADDR$path" >"$WORK/wrk.txt"
        grep -E "Requests/sec|    50%|    99%|Non-2xx|Socket errors" "$WORK/wrk.txt" | sed 's/^ */   wrk: /'
    fi
    echo "   service peak RSS so far: $(peak_rss)"
done
echo
echo "service peak RSS (VmHWM): $(peak_rss)"
exit "$failed"
