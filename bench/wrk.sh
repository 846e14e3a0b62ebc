# bench/wrk.sh, sourced by the bench scripts that check their figures with an outside load
# generator (Debian's wrk): ensure_wrk installs it, wrk_run runs it and keeps its figures.

# ensure_wrk: installs wrk with apt-get when it is missing, unless WRK=0 (no wrk runs).
ensure_wrk() {
    if [ "${WRK:-1}" != 0 ] && ! command -v wrk >/dev/null; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } ||
            { echo "could not install wrk (apt-get install wrk); WRK=0 skips it" >&2; exit 1; }
    fi
}

# wrk_run OUT ID ARGS...: one wrk run (2 threads, $CONNS connections, $SECS s, the ARGS), its raw
# output kept as $WORK/ID.wrk and its req/s, p99 and errors appended to OUT as one JSON line.
wrk_run() {
    local out=$1 id=$2
    shift 2
    wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "$@" >"$WORK/$id.wrk"
    python3 - "$id" "$WORK/$id.wrk" >>"$out" <<'PY'
import json, re, sys
text = open(sys.argv[2]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
errors = sum(int(x) for x in re.findall(r"(?:Non-2xx or 3xx responses|Socket errors:.*?timeout)\s*:?\s*(\d+)", text))
print(json.dumps({"id": sys.argv[1], "rps": rps, "p99_ms": p99, "errors": errors}))
PY
}
