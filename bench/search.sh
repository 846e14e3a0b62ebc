#!/usr/bin/env bash
# bench/search.sh [BINARY]: transcript search's latency on the embedded store at scale.
#
# Seeds EVENTS (default 1,000,000) speech events through the API (batches of 100 into calls of
# 200 turns; the texts are 6-20 words drawn from a Zipf-distributed vocabulary of 20,000 words, so
# common words match a large share of events and rare ones few), then measures GET /search with
# Debian's wrk (one connection, so each latency is one query alone; --latency for the tail) and
# with a plain sequential client (Python), for: two common words (each in about a fifth and a
# tenth of the events), a phrase of two common words, two rarer words, and the common words in
# newest order. Prints how many events each query matches (walking its hits), requests/s and
# p50/p99.
#
# Settings (environment): EVENTS=1000000, BENCH_SECONDS=10, SQLITE_SYNCHRONOUS=normal (seeding
# speed only; searches do not write), DB=path (keep the seeded database there and, when it exists
# already, search it without seeding again).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=$(realpath "${1:-${CARGO_TARGET_DIR:-target}/release/session-service}")
EVENTS=${EVENTS:-1000000}
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

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$port
DB=${DB:-$WORK/bench.db}
SEED=1
[ -e "$DB" ] && SEED=0
env HOST=127.0.0.1 PORT="$port" RUST_LOG=warn DATABASE_URL="sqlite://$DB" \
    SQLITE_SYNCHRONOUS="${SQLITE_SYNCHRONOUS:-normal}" "$BIN" >"$WORK/service.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fsS "http://$ADDR/ready" >/dev/null 2>&1 && break; sleep 0.1; done

if ((SEED)); then
echo "seeding $EVENTS events through the API..."
started=$(date +%s)
python3 - "$ADDR" "$EVENTS" <<'EOF'
import http.client, json, random, sys
addr, total = sys.argv[1], int(sys.argv[2])
host, port = addr.split(":")
rng = random.Random(20261205)
# A vocabulary with a few real words at known ranks (what the queries ask for).
words = [f"w{i}" for i in range(20000)]
for rank, word in {5: "refund", 10: "order", 20: "card", 21: "number", 300: "invoice", 301: "late"}.items():
    words[rank] = word
weights = [1 / (r + 1) ** 1.05 for r in range(len(words))]
conn = http.client.HTTPConnection(host, int(port))
def post(path, body):
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = conn.getresponse(); data = r.read()
    if r.status not in (200, 201):
        sys.exit(f"{path}: {r.status} {data[:200]!r}")
done = call = 0
while done < total:
    sid = f"call-{call}"; call += 1
    post("/sessions", {"sessionId": sid, "language": "en-US"})
    for start in range(0, 200, 100):
        n = min(100, total - done)
        if n <= 0: break
        events = []
        for i in range(start, start + n):
            text = " ".join(rng.choices(words, weights, k=rng.randint(6, 20)))
            kind = "user_speech" if i % 2 == 0 else "bot_speech"
            events.append({"eventId": f"e{i}", "type": kind, "payload": {"text": text}})
        post(f"/sessions/{sid}/events:batch", {"events": events})
        done += n
EOF
echo "seeded in $(( $(date +%s) - started )) s"
else
    echo "searching $DB as it is (seeded before)"
fi

# count PATH: how many hits the search at PATH has (walking it in newest order, 100 a page).
count() {
    python3 - "$ADDR" "$1" <<'EOF'
import http.client, json, sys, urllib.parse
host, port = sys.argv[1].split(":")
conn = http.client.HTTPConnection(host, int(port))
base = sys.argv[2].replace("&order=newest", "") + "&order=newest&limit=100"
total, after = 0, None
while True:
    conn.request("GET", base + (f"&after={urllib.parse.quote(after)}" if after else ""))
    r = conn.getresponse(); page = json.loads(r.read())
    total += len(page["hits"]); after = page["nextCursor"]
    if not after: break
print(total)
EOF
}

sequential() {
    python3 - "$ADDR" "$1" <<'EOF'
import http.client, sys, time
host, port = sys.argv[1].split(":")
conn = http.client.HTTPConnection(host, int(port))
times = []
for _ in range(300):
    t = time.perf_counter()
    conn.request("GET", sys.argv[2]); r = conn.getresponse(); r.read()
    assert r.status == 200, r.status
    times.append((time.perf_counter() - t) * 1000)
times.sort()
print(f"p50 {times[149]:.1f} ms, p99 {times[296]:.1f} ms (300 sequential queries)")
EOF
}

for spec in "two common words|refund+order" \
            "a phrase of common words|%22card+number%22" \
            "two rarer words|invoice+late" \
            "two common words, newest|refund+order&order=newest"; do
    IFS='|' read -r name query <<<"$spec"
    path="/search?q=$query"
    echo
    echo "== $name: GET $path  (matches $(count "$path") events)"
    echo "   python: $(sequential "$path")"
    wrk -t1 -c1 -d"${SECS}s" --latency "http://$ADDR$path" >"$WORK/wrk.txt"
    grep -E "Requests/sec|    50%|    99%|Non-2xx" "$WORK/wrk.txt" | sed 's/^/   wrk: /'
done
