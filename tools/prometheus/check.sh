#!/usr/bin/env bash
# tools/prometheus/check.sh: checks the Prometheus alert rules (deploy/prometheus/alerts.yml) and
# what the service exports for them, with promtool (installed on first use, see below):
#   1. `promtool check rules --lint=all --lint-fatal`: the rules parse, their PromQL is valid, and
#      no rule is a duplicate;
#   2. `promtool test rules deploy/prometheus/alerts.test.yml`: the unit tests pass;
#   3. every alert is tested both firing (a block `alertname:` with exp_alerts) and quiet
#      (`exp_alerts: []`), and its runbook_url's anchor is a `### <AlertName>` heading in README.md;
#   4. a real scrape right after start-up (the service $SESSION_SERVICE_BIN on a free loopback
#      port, with a throwaway SQLite file, MAX_STREAMS=2, SWEEP_INTERVAL_MS=200): the counters the
#      alerts take increase() of, and the gauges they divide by or compare with, are exported at
#      start-up (a counter that first appears at 1 shows no increase, so its first failure would
#      not alert);
#   5. ./demo.sh's tour against it (create, append, replay, a 409 conflict, a batch, list, live
#      streams, a timer the sweeper ends, complete, delete, 404s, /ready), plus a stream refused
#      503 because MAX_STREAMS are open, then a scrape: `promtool check metrics` prints nothing;
#   6. that scrape has every metric of src/telemetry/catalog.rs, with the kind listed there;
#   7. that scrape has the series the rules select (route templates, label values), a
#      sweeper_last_success_timestamp_seconds of the last few seconds and streams_max = MAX_STREAMS.
# Every check runs even when an earlier one fails; the last line is "prometheus: N passed, N failed".
#
#   SESSION_SERVICE_BIN=target/debug/session-service tools/prometheus/check.sh
#
# Needs bash, curl, coreutils/grep/sed/awk/perl, and promtool: when it is not on PATH, the script
# installs Debian's `prometheus` package (no smaller Debian package has promtool), which needs
# root; on a host that runs systemd that package also enables and starts a Prometheus server.
# Only loopback traffic; the service is stopped and its files removed on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rules="$root/deploy/prometheus/alerts.yml"
tests="$root/deploy/prometheus/alerts.test.yml"
catalog="$root/src/telemetry/catalog.rs"
max_streams=2

log() { printf '[prometheus] %s\n' "$*" >&2; }
passed=0
failed=0
pass() { log "ok: $1"; passed=$((passed + 1)); }
fail() { log "FAILED: $1"; failed=$((failed + 1)); }
finish() {
    echo "prometheus: $passed passed, $failed failed"
    exit $((failed > 0))
}

# --- promtool ---------------------------------------------------------------------------------------
install_cmd="apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus"
if ! command -v promtool >/dev/null; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        fail "promtool is not on PATH; install it (Debian, as root): $install_cmd"
        finish
    fi
    log "promtool is not on PATH; installing Debian's prometheus package: $install_cmd"
    if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends prometheus) >&2 || ! command -v promtool >/dev/null; then
        fail "could not install promtool; run (as root): $install_cmd"
        finish
    fi
fi
log "$(promtool --version 2>&1 | head -n 1)"

work=$(mktemp -d "${TMPDIR:-/tmp}/prometheus-check.XXXXXX")
service_pid=""
# shellcheck disable=SC2317  # invoked through trap
cleanup() {
    if [ -n "$service_pid" ]; then
        kill "$service_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$service_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$service_pid" 2>/dev/null || true
        wait "$service_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# --- 1. the rules -----------------------------------------------------------------------------------
if promtool check rules --lint=all --lint-fatal "$rules" >"$work/rules.out" 2>&1; then
    pass "promtool check rules: $(grep -o '[0-9]* rules found' "$work/rules.out")"
else
    sed 's/^/  /' "$work/rules.out" >&2
    fail "promtool check rules deploy/prometheus/alerts.yml (above)"
fi

# --- 2. their unit tests ----------------------------------------------------------------------------
# promtool resolves rule_files relative to the test file.
if promtool test rules "$tests" >"$work/test.out" 2>&1; then
    pass "promtool test rules deploy/prometheus/alerts.test.yml"
else
    sed 's/^/  /' "$work/test.out" >&2
    fail "promtool test rules deploy/prometheus/alerts.test.yml (above)"
fi

# --- 3. every alert tested both ways, and with a runbook section -----------------------------------
mapfile -t alerts < <(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\) *$/\1/p' "$rules")
problems=()
[ "${#alerts[@]}" -gt 0 ] || problems+=("no alert found in $rules")
for alert in "${alerts[@]}"; do
    grep -Eq "^ *alertname: $alert *\$" "$tests" ||
        problems+=("$alert: no test where it fires (a block with alertname: $alert and exp_alerts)")
    grep -Eq "alertname: $alert, exp_alerts: \[\]" "$tests" ||
        problems+=("$alert: no test where it stays quiet ({eval_time: ..., alertname: $alert, exp_alerts: []})")
    anchor=$(echo "$alert" | tr '[:upper:]' '[:lower:]')
    # The rule's runbook_url: the line after its `- alert:` up to the next one.
    url=$(awk -v a="$alert" '$0 ~ "- alert: *" a " *$" {on=1; next} on && /- alert:/ {exit}
        on && /runbook_url:/ {sub(/.*runbook_url: */, ""); gsub(/"/, ""); print; exit}' "$rules")
    [ "${url##*#}" = "$anchor" ] && [ "${url%#*}" != "$url" ] ||
        problems+=("$alert: runbook_url '$url' does not end in #$anchor")
    grep -Eq "^### $alert *\$" "$root/README.md" ||
        problems+=("$alert: README.md has no '### $alert' heading (its runbook section)")
done
if [ "${#problems[@]}" -eq 0 ]; then
    pass "each of the ${#alerts[@]} alerts is tested firing and quiet, and has its runbook section in README.md"
else
    printf '  %s\n' "${problems[@]}" >&2
    fail "alerts without tests or runbook sections (above)"
fi

# --- the service ------------------------------------------------------------------------------------
bin=${SESSION_SERVICE_BIN:-}
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    fail "set SESSION_SERVICE_BIN to the service binary (e.g. target/debug/session-service) for the scrape checks${bin:+; $bin is not an executable}"
    finish
fi
# The log exists before the service opens it: it is read at once below.
: >"$work/service.log"
# A clean environment: nothing of the caller's (API keys, rate limits, a DATABASE_URL) applies.
# demo.sh's webhook receiver listens on loopback, which the service refuses unless told.
env -i PATH="$PATH" HOME="$work" HOST=127.0.0.1 PORT=0 LOG_FORMAT=json RUST_LOG=session_service=info \
    DATABASE_URL="sqlite://$work/sessions.db" SWEEP_INTERVAL_MS=200 MAX_STREAMS=$max_streams \
    WEBHOOK_ALLOW_PRIVATE_NETWORKS=true WEBHOOK_RETRY_SCHEDULE=0,1,1 \
    "$bin" >"$work/service.log" 2>&1 &
service_pid=$!
port=""
for _ in $(seq 1 100); do # 100 x 0.1 s
    port=$(sed -n 's/.*"message":"listening".*"address":"127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$work/service.log" | head -n 1)
    [ -n "$port" ] && curl -fsS --max-time 2 "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    kill -0 "$service_pid" 2>/dev/null || break
    port=""
    sleep 0.1
done
if [ -z "$port" ]; then
    tail -n 20 "$work/service.log" | sed 's/^/  /' >&2
    fail "$bin did not start listening within 10 s (its log above)"
    finish
fi
base="http://127.0.0.1:$port"
log "started $bin (pid $service_pid) on $base"

scrape() { curl -fsS --max-time 10 "$base/metrics" >"$1"; }

# series FILE NAME [LABEL="VALUE"...]: the values of NAME's samples in FILE with all those labels
# (an argument may hold several, separated by spaces).
series() {
    local file=$1 name=$2
    shift 2
    awk -v name="$name" -v want="$*" '
        /^#/ || NF < 2 { next }
        { n = $1; sub(/\{.*/, "", n) }
        n != name { next }
        { split(want, w, " "); for (i in w) if (w[i] != "" && index($0, w[i]) == 0) next; print $NF }
    ' "$file"
}

# --- 4. what the alerts need is there from start-up ------------------------------------------------
problems=()
if scrape "$work/start.prom"; then
    for wanted in 'storage_write_failures_total kind="full"' 'storage_write_failures_total kind="unavailable"' \
        streams_refused_total sweeper_failures_total sweeper_runs_total streams_max \
        sweeper_last_success_timestamp_seconds; do
        name=${wanted%% *}
        [ -n "$(series "$work/start.prom" "$name" "${wanted#"$name"}")" ] ||
            problems+=("$wanted: not exported at start-up (register it at 0 when the service starts, so that increase() sees its first failure)")
    done
else
    problems+=("GET $base/metrics failed")
fi
if [ "${#problems[@]}" -eq 0 ]; then
    pass "at start-up: the failure counters at 0, streams_max and sweeper_last_success_timestamp_seconds are exported"
else
    printf '  %s\n' "${problems[@]}" >&2
    fail "series the alerts use are missing right after start-up (above)"
fi

# --- 5. traffic, then `promtool check metrics` on the scrape ----------------------------------------
traffic_ok=1
if ! PORT=$port HOST=127.0.0.1 NO_COLOR=1 SESSION_SERVICE_BIN=/nonexistent "$root/demo.sh" >"$work/demo.log" 2>&1; then
    tail -n 25 "$work/demo.log" | sed 's/^/  /' >&2
    log "demo.sh against $base did not go as expected (its end above)"
    traffic_ok=0
fi
# A stream refused because MAX_STREAMS are open: open $max_streams on a live call, then one more.
sid="prom-check-$$"
sse() { curl -sS -N --max-time "$1" -H 'Accept: text/event-stream' -o "$2" -w '%{http_code}' "$base/sessions/$sid/events"; }
curl -fsS --max-time 10 -o /dev/null -H 'Content-Type: application/json' \
    -d "{\"sessionId\":\"$sid\",\"language\":\"en-US\"}" "$base/sessions" || traffic_ok=0
stream_pids=()
for i in $(seq 1 $max_streams); do
    sse 20 "$work/stream.$i" >/dev/null 2>&1 &
    stream_pids+=($!)
done
for i in $(seq 1 $max_streams); do
    for _ in $(seq 1 100); do grep -q '^event: caught-up' "$work/stream.$i" 2>/dev/null && break; sleep 0.1; done
done
refused=$(sse 5 "$work/stream.refused" 2>/dev/null || true)
[ "$refused" = 503 ] || { log "a stream beyond MAX_STREAMS=$max_streams answered '$refused', expected 503"; traffic_ok=0; }
curl -fsS --max-time 10 -o /dev/null -X POST "$base/sessions/$sid/complete" || traffic_ok=0
for pid in "${stream_pids[@]}"; do wait "$pid" || true; done
sleep 0.5 # a few sweeper runs after the last request

problems=()
if ! scrape "$work/metrics.prom"; then
    problems+=("GET $base/metrics failed")
elif ! promtool check metrics <"$work/metrics.prom" >"$work/lint.out" 2>&1 || [ -s "$work/lint.out" ]; then
    sed 's/^/  /' "$work/lint.out" >&2
    problems+=("promtool check metrics reported problems (above)")
fi
[ "$traffic_ok" = 1 ] || problems+=("the traffic did not go as expected (above)")
if [ "${#problems[@]}" -eq 0 ]; then
    pass "promtool check metrics on a scrape after demo.sh and a refused stream: no problems ($(grep -c '^# TYPE' "$work/metrics.prom") families)"
else
    printf '  %s\n' "${problems[@]}" >&2
    fail "the scrape after traffic (above)"
fi

# --- 6. every metric of the catalog, with its kind --------------------------------------------------
problems=()
if [ ! -f "$catalog" ]; then
    problems+=("no $catalog to read the metric list from")
else
    # Metrics whose help starts "MongoDB only:" are left out: the service scraped here runs on
    # the embedded store.
    mapfile -t listed < <(perl -0ne 'while (/\b(counter|gauge|histogram)\(\s*"([a-z_:][a-z0-9_:]*)",\s*"([^"]*)"/g) { print "$2 $1\n" unless $3 =~ /^MongoDB only:/ }' "$catalog")
    [ "${#listed[@]}" -gt 0 ] || problems+=("no metric found in $catalog")
    for entry in "${listed[@]}"; do
        name=${entry% *} kind=${entry#* }
        if grep -qx "# TYPE $name summary" "$work/metrics.prom" && [ "$kind" = histogram ]; then
            problems+=("$name: exported as a summary, not a histogram (no buckets set for it in src/telemetry: PrometheusBuilder::set_buckets_for_metric); a summary's quantiles cannot be aggregated across instances")
        elif ! grep -qx "# TYPE $name $kind" "$work/metrics.prom"; then
            problems+=("$name ($kind): no '# TYPE $name $kind' in the scrape")
        fi
        grep -q "^# HELP $name " "$work/metrics.prom" || problems+=("$name: no help text in the scrape")
    done
fi
if [ "${#problems[@]}" -eq 0 ]; then
    pass "the scrape has all ${#listed[@]} metrics of src/telemetry/catalog.rs, each with its kind and help"
else
    printf '  %s\n' "${problems[@]}" >&2
    fail "metrics missing from the scrape (above)"
fi

# --- 7. the series the rules select, and sane values ------------------------------------------------
problems=()
m="$work/metrics.prom"
[ -n "$(series "$m" http_requests_total 'route="/ready"' 'status="200"')" ] ||
    problems+=('http_requests_total{route="/ready"}: not in the scrape (SessionServiceNotReady selects it)')
[ -n "$(series "$m" http_request_duration_seconds_bucket 'method="POST"' 'route="/sessions/{session_id}/events"' 'status="201"')" ] ||
    problems+=('http_request_duration_seconds_bucket{method="POST",route="/sessions/{session_id}/events",status="201"}: not in the scrape (SessionServiceSlowWrites selects it)')
[ -n "$(series "$m" http_requests_total 'route="/sessions/{session_id}/events"' 'status="503"')" ] ||
    problems+=('http_requests_total{route="/sessions/{session_id}/events",status="503"}: the refused stream is not counted (SessionServiceHigh5xxRate subtracts streams_refused_total from it)')
value=$(series "$m" streams_refused_total)
awk -v v="${value:-0}" 'BEGIN { exit !(v >= 1) }' || problems+=("streams_refused_total is '${value}', expected 1 or more")
value=$(series "$m" streams_max)
[ "$value" = "$max_streams" ] || problems+=("streams_max is '$value', expected MAX_STREAMS=$max_streams")
value=$(series "$m" sweeper_last_success_timestamp_seconds)
awk -v v="${value:-0}" -v now="$(date +%s)" 'BEGIN { exit !(v > now - 30 && v < now + 5) }' ||
    problems+=("sweeper_last_success_timestamp_seconds is '$value', expected Unix seconds of the last few seconds ($(date +%s) now)")
if [ "${#problems[@]}" -eq 0 ]; then
    pass "the scrape has the series the rules select; streams_max, streams_refused_total and sweeper_last_success_timestamp_seconds as expected"
else
    printf '  %s\n' "${problems[@]}" >&2
    fail "series the rules select, or their values (above)"
fi

finish
