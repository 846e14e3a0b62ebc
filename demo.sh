#!/usr/bin/env bash
# demo.sh: a guided tour of every session-service endpoint with curl, also usable as a smoke test.
#
#   cargo build --release && ./demo.sh
#
# If nothing answers on http://$HOST:$PORT/health, the script starts ./target/release/session-service,
# then stops it on exit (Ctrl-C included). A service that was already running is used and left
# running. Each step states the status it expects; the script exits 1 if any step differs.
#
# Environment:
#   PORT          3000       port of the service to use or start
#   HOST          127.0.0.1  address of the service to use or start
#   DATABASE_URL  (unset)    passed unchanged to a service this script starts, e.g.
#                            mongodb://127.0.0.1:27017/demo; if unset, the started service uses a
#                            throwaway SQLite file, so your own data is never touched
#   SESSION_SERVICE_BIN      binary to start (default: target/release/session-service next to this script)
#   NO_COLOR      (unset)    set to disable colours
#   DEMO_NO_JQ    (unset)    set to show raw JSON and parse without jq even when it is installed
#
# Needs bash, curl and coreutils/grep/sed; jq is optional (pretty output).

set -euo pipefail

PORT="${PORT:-3000}"
HOST="${HOST:-127.0.0.1}"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="${SESSION_SERVICE_BIN:-$SCRIPT_DIR/target/release/session-service}"

if [[ "$HOST" == *:* ]]; then BASE="http://[$HOST]:$PORT"; else BASE="http://$HOST:$PORT"; fi

if ! command -v curl >/dev/null 2>&1; then
    echo "demo: curl is required but was not found on PATH" >&2
    exit 1
fi
HAVE_JQ=0
if [[ -z "${DEMO_NO_JQ:-}" ]] && command -v jq >/dev/null 2>&1; then HAVE_JQ=1; fi

if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
    BOLD=$'\e[1m' DIM=$'\e[2m' RED=$'\e[31m' GREEN=$'\e[32m' YELLOW=$'\e[33m' CYAN=$'\e[36m' RESET=$'\e[0m'
else
    BOLD='' DIM='' RED='' GREEN='' YELLOW='' CYAN='' RESET=''
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/session-demo.XXXXXX")"
RESP="$WORK/response.body"
HDRS="$WORK/response.headers"
LOG="$WORK/service.log"
SERVICE_PID=""

# shellcheck disable=SC2317  # invoked through trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$SERVICE_PID" ]]; then
        echo
        echo "${DIM}stopping the service this script started (pid $SERVICE_PID)${RESET}"
        kill "$SERVICE_PID" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do
            kill -0 "$SERVICE_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVICE_PID" 2>/dev/null; then
            echo "${YELLOW}service did not stop within 5 s; killing it${RESET}"
            kill -9 "$SERVICE_PID" 2>/dev/null || true
        fi
        wait "$SERVICE_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Start the service unless one already answers.

redact() { sed -E 's#://[^@/]*@#://***@#'; }
strip_ansi() { sed $'s/\e\\[[0-9;]*m//g'; }

if curl -fsS --max-time 2 "$BASE/health" >/dev/null 2>&1; then
    echo "${BOLD}Using the service already answering at $BASE${RESET} (it will be left running)."
    if [[ -n "${DATABASE_URL:-}" ]]; then
        echo "${DIM}note: DATABASE_URL only applies to a service this script starts; the running one keeps its own store${RESET}"
    fi
else
    if [[ ! -x "$BIN" ]]; then
        echo "demo: nothing answers at $BASE and $BIN does not exist." >&2
        echo "demo: build it first:  cargo build --release   (or start the service yourself)" >&2
        exit 1
    fi
    if [[ -n "${DATABASE_URL:-}" ]]; then
        db_url="$DATABASE_URL"
        db_note="$(printf '%s' "$DATABASE_URL" | redact) (from DATABASE_URL)"
    else
        db_url="sqlite://$WORK/demo.db"
        db_note="$db_url (throwaway, deleted on exit)"
    fi
    echo "${BOLD}Nothing answers at $BASE; starting $BIN${RESET}"
    echo "  database: $db_note"
    # The demo's webhook receiver listens on loopback, which the service refuses unless told.
    PORT="$PORT" HOST="$HOST" DATABASE_URL="$db_url" WEBHOOK_ALLOW_PRIVATE_NETWORKS=true \
        WEBHOOK_RETRY_SCHEDULE=0,1,1 "$BIN" >"$LOG" 2>&1 &
    SERVICE_PID=$!
    ready=0
    for ((i = 0; i < 60; i++)); do # 60 x 0.25 s = 15 s
        if curl -fsS --max-time 1 "$BASE/health" >/dev/null 2>&1; then ready=1; break; fi
        if ! kill -0 "$SERVICE_PID" 2>/dev/null; then break; fi
        sleep 0.25
    done
    if ((ready == 0)); then
        if kill -0 "$SERVICE_PID" 2>/dev/null; then
            echo "demo: the service did not answer $BASE/health within 15 s. Last log lines:" >&2
        else
            wait "$SERVICE_PID" 2>/dev/null && code=0 || code=$?
            SERVICE_PID=""
            echo "demo: the service exited (status $code) before answering. Last log lines:" >&2
        fi
        tail -n 30 "$LOG" | strip_ansi >&2 || true
        exit 1
    fi
    echo "  started (pid $SERVICE_PID), log: $LOG"
fi

# ---------------------------------------------------------------------------------------------
# Helpers.

STEPS=0
CHECKS=0
MISMATCHES=0
MISMATCH_LIST=""
STATUS=""
QUIET=0

reason() {
    case "$1" in
        200) echo "OK" ;; 201) echo "Created" ;; 400) echo "Bad Request" ;; 404) echo "Not Found" ;;
        405) echo "Method Not Allowed" ;; 409) echo "Conflict" ;; 413) echo "Payload Too Large" ;;
        415) echo "Unsupported Media Type" ;; 500) echo "Internal Server Error" ;;
        503) echo "Service Unavailable" ;; 000) echo "(no response)" ;; *) echo "" ;;
    esac
}

mismatch() {
    MISMATCHES=$((MISMATCHES + 1))
    MISMATCH_LIST+="  - step $STEPS: $1"$'\n'
    echo "${RED}${BOLD}MISMATCH: $1${RESET}"
}

# Pretty-print the last response body (jq if available, else raw).
show_body() {
    [[ -s "$RESP" ]] || { echo "${DIM}(empty body)${RESET}"; return; }
    if ((HAVE_JQ)) && jq . "$RESP" 2>/dev/null; then return; fi
    cat "$RESP"
    echo
}

# call TITLE EXPECTED METHOD PATH [BODY [CONTENT_TYPE]]
# Prints a heading and the curl command, sends it, prints status and body, checks the status.
call() {
    local title=$1 expect=$2 method=$3 path=$4
    local url="$BASE$path"
    local -a args=(-sS --max-time 10 -o "$RESP" -D "$HDRS" -w '%{http_code}')
    local shown="curl"
    [[ "$method" == GET ]] || { args+=(-X "$method"); shown+=" -X $method"; }
    shown+=" '$url'"
    if (($# >= 5)); then
        local body=$5 ctype=${6:-application/json}
        args+=(-H "Content-Type: $ctype" --data-binary "$body")
        shown+=" -H 'Content-Type: $ctype' -d '$body'"
    fi
    STEPS=$((STEPS + 1))
    echo
    echo "${CYAN}${BOLD}== $STEPS. $title${RESET}  ${DIM}(expect $expect)${RESET}"
    echo "${DIM}\$ $shown${RESET}"
    : >"$RESP"
    : >"$HDRS"
    STATUS=$(curl "${args[@]}" "$url") || STATUS="000"
    local mark
    if [[ "$STATUS" == "$expect" ]]; then mark="${GREEN}[ok]${RESET}"; else mark="${RED}[expected $expect]${RESET}"; fi
    echo "${BOLD}HTTP $STATUS $(reason "$STATUS")${RESET} $mark"
    # A few headers worth seeing: where a new resource lives, allowed methods, problem content type.
    grep -iE '^(location|allow):' "$HDRS" | tr -d '\r' || true
    if [[ "$STATUS" =~ ^[45] ]]; then grep -iE '^content-type:' "$HDRS" | tr -d '\r' || true; fi
    ((QUIET)) || show_body
    if [[ "$STATUS" != "$expect" ]]; then
        mismatch "$method $path answered $STATUS, expected $expect"
    fi
}

# field NAME: a top-level scalar field of the last response, as text ("null" for null).
# Session and event fields come before any nested "events", so the first match is the top-level one.
field() {
    if ((HAVE_JQ)); then
        jq -r --arg k "$1" '.[$k] | if . == null then "null" else tostring end' "$RESP" 2>/dev/null || true
    else
        { grep -oE "\"$1\":(\"[^\"]*\"|[^,}]*)" "$RESP" || true; } | head -n 1 | sed -E "s/^\"$1\"://; s/^\"//; s/\"\$//"
    fi
}

# first_of KEY: the first `"KEY":value` in the last response (a string, or an array of numbers).
first_of() {
    { grep -oE "\"$1\":(\"[^\"]*\"|\[[][0-9,]*\])" "$RESP" || true; } | head -n 1
}

# seqs: the seq numbers of the events in the last response, e.g. [1,2,3].
seqs() {
    if ((HAVE_JQ)); then
        jq -c '[.events[].seq]' "$RESP" 2>/dev/null || echo "[]"
    else
        echo "[$({ grep -oE '"seq":[0-9]+' "$RESP" || true; } | sed 's/.*://' | paste -sd, -)]"
    fi
}

# first_error_field: errors[0].field of the last (problem) response, or "".
first_error_field() {
    if ((HAVE_JQ)); then
        jq -r '.errors[0].field // ""' "$RESP" 2>/dev/null || true
    else
        { grep -oE '"field":"[^"]*"' "$RESP" || true; } | head -n 1 | sed -E 's/^"field":"//; s/"$//'
    fi
}

# next_cursor: pagination.nextCursor of the last response, or "null".
# Cursors are URL-safe base64, so they go into a query string as they are.
next_cursor() {
    if ((HAVE_JQ)); then
        jq -r '.pagination.nextCursor // "null"' "$RESP" 2>/dev/null || echo null
    else
        local c
        c=$({ grep -o '"nextCursor":"[^"]*"' "$RESP" || true; } | head -n 1 | sed 's/^"nextCursor":"//; s/"$//')
        echo "${c:-null}"
    fi
}

pagination() {
    if ((HAVE_JQ)); then
        jq -c '.pagination' "$RESP" 2>/dev/null || true
    else
        { grep -o '"pagination":{[^}]*}' "$RESP" || true; } | sed 's/^"pagination"://'
    fi
}

# check DESCRIPTION ACTUAL EXPECTED: a content check on top of the status check.
check() {
    CHECKS=$((CHECKS + 1))
    if [[ "$2" == "$3" ]]; then
        echo "${GREEN}  check: $1 = $2${RESET}"
    else
        mismatch "$1 is '$2', expected '$3'"
    fi
}

# ---------------------------------------------------------------------------------------------
# The walk.

SID="demo-$(date +%s)-$$"
MISSING="demo-missing-$(date +%s)-$$"
echo "${BOLD}session id for this run: $SID${RESET}   ${DIM}(jq: $([[ $HAVE_JQ == 1 ]] && echo yes || echo no))${RESET}"

echo
echo "${YELLOW}${BOLD}### Liveness and readiness${RESET}"
call "Health" 200 GET /health
call "Readiness (the store answers)" 200 GET /ready

echo
echo "${YELLOW}${BOLD}### Sessions are created idempotently${RESET}"
call "Create a session" 201 POST /sessions \
    "{\"sessionId\":\"$SID\",\"language\":\"en-US\",\"metadata\":{\"caller\":\"+15550100\",\"campaign\":\"demo\"}}"
started_at=$(field startedAt)
check "status of the new session" "$(field status)" initiated

call "Create it again with another language and metadata: 200, stored session unchanged" 200 POST /sessions \
    "{\"sessionId\":\"$SID\",\"language\":\"fr-FR\",\"metadata\":{\"other\":true}}"
check "language" "$(field language)" en-US
check "startedAt" "$(field startedAt)" "$started_at"

echo
echo "${YELLOW}${BOLD}### Events${RESET}"
ev() { # ev SEQ EVENT_ID TYPE PAYLOAD [TIMESTAMP]
    local body="{\"eventId\":\"$2\",\"type\":\"$3\",\"payload\":$4"
    if (($# >= 5)); then body+=",\"timestamp\":\"$5\""; fi
    body+="}"
    call "Add event $2 ($3)" 201 POST "/sessions/$SID/events" "$body"
    check "seq of $2" "$(field seq)" "$1"
}
ev 1 e-001 system '{"event":"call_started","from":"+15550100"}'
ev 2 e-002 bot_speech '{"text":"Hello! How can I help you today?"}'
ev 3 e-003 user_speech '{"text":"I would like to check my order.","confidence":0.94}'
ev 4 e-004 bot_speech '{"text":"Sure. What is the order number?"}'
ev 5 e-005 user_speech '{"text":"It is 4 2 7 1.","confidence":0.88}' "2025-12-21T15:30:15.123Z"
check "explicit timestamp kept" "$(field timestamp)" "2025-12-21T15:30:15.123Z"
ev 6 e-006 bot_speech '{"text":"Thanks, let me transfer you to an agent."}'
ev 7 e-007 system '{"event":"transfer","to":"agent-queue"}'

call "Retry e-003 with the same content: 200, same seq" 200 POST "/sessions/$SID/events" \
    '{"eventId":"e-003","type":"user_speech","payload":{"text":"I would like to check my order.","confidence":0.94}}'
check "seq of the retried e-003" "$(field seq)" 3

call "Reuse e-003 with different content: 409 event_id_conflict" 409 POST "/sessions/$SID/events" \
    '{"eventId":"e-003","type":"user_speech","payload":{"text":"Something else entirely."}}'
check "code" "$(field code)" event_id_conflict

call "Event for a session that does not exist: 404 session_not_found" 404 POST "/sessions/$MISSING/events" \
    '{"eventId":"e-001","type":"system","payload":{}}'
check "code" "$(field code)" session_not_found

call "Read one event" 200 GET "/sessions/$SID/events/e-004"
check "seq of e-004" "$(field seq)" 4

call "Read an event that does not exist: 404 event_not_found" 404 GET "/sessions/$SID/events/e-999"
check "code" "$(field code)" event_not_found

echo
echo "${YELLOW}${BOLD}### Batches: several events at once, all or nothing${RESET}"
BSID="$SID-batch"
call "Create a session for batches" 201 POST /sessions "{\"sessionId\":\"$BSID\",\"language\":\"en-US\"}"
BATCH='{"events":[{"eventId":"b-1","type":"user_speech","payload":{"text":"Two things, actually."}},{"eventId":"b-2","type":"bot_speech","payload":{"text":"Go ahead."}},{"eventId":"b-3","type":"system","payload":{"event":"hold_music_off"}}]}'
call "Add a batch of 3 events: 201, consecutive seqs in request order" 201 POST "/sessions/$BSID/events:batch" "$BATCH"
check "seqs of the batch" "$(seqs)" "[1,2,3]"
call "Send the same batch again (a retry after a lost answer): 200, the same seqs" 200 POST "/sessions/$BSID/events:batch" "$BATCH"
check "seqs of the replayed batch" "$(seqs)" "[1,2,3]"
call "A batch reusing b-2 with other content: 409 naming it, nothing stored" 409 POST "/sessions/$BSID/events:batch" \
    '{"events":[{"eventId":"b-4","type":"user_speech","payload":{"text":"New."}},{"eventId":"b-2","type":"bot_speech","payload":{"text":"Changed."}}]}'
check "code" "$(field code)" event_id_conflict
check "the offending event" "$(first_error_field)" "events[1].eventId"
call "The session still holds 3 events (b-4 was not stored either)" 200 GET "/sessions/$BSID?limit=1"
check "eventCount" "$(field eventCount)" 3

echo
echo "${YELLOW}${BOLD}### Reading a session: pagination by page number${RESET}"
call "Page 1, 3 per page" 200 GET "/sessions/$SID?limit=3&page=1"
check "event seqs on page 1" "$(seqs)" "[1,2,3]"
check "session status" "$(field status)" active

call "Page 2, 3 per page" 200 GET "/sessions/$SID?limit=3&page=2"
check "event seqs on page 2" "$(seqs)" "[4,5,6]"

call "Newest first (order=desc)" 200 GET "/sessions/$SID?limit=3&order=desc"
check "event seqs, newest first" "$(seqs)" "[7,6,5]"

echo
echo "${YELLOW}${BOLD}### Reading a session: pagination by cursor (follow nextCursor until it is null)${RESET}"
QUIET=1
walked=""
first_cursor=""
path="/sessions/$SID?limit=3"
for ((round = 1; round <= 10; round++)); do
    call "Cursor walk, request $round" 200 GET "$path"
    echo "  events seq: $(seqs)"
    echo "  pagination: $(pagination)"
    walked+="$(seqs | tr -d '[]'),"
    cursor=$(next_cursor)
    if [[ "$cursor" == null || "$STATUS" != 200 ]]; then break; fi
    if [[ -z "$first_cursor" ]]; then first_cursor=$cursor; fi
    path="/sessions/$SID?limit=3&after=$cursor"
done
QUIET=0
check "all seqs seen by the cursor walk" "[${walked%,}]" "[1,2,3,4,5,6,7]"
check "pages walked" "$round" 3
call "page and after together: 400" 400 GET "/sessions/$SID?limit=3&page=2&after=${first_cursor:-djEuYS4z}"
check "code" "$(field code)" validation_failed

echo
echo "${YELLOW}${BOLD}### Errors are application/problem+json${RESET}"
call "Validation: bad sessionId and missing language (both reported)" 400 POST /sessions \
    '{"sessionId":"bad id!"}'
check "code" "$(field code)" validation_failed
check "invalid fields" "$({ grep -o '"field":"[^"]*"' "$RESP" || true; } | sed 's/^"field"://' | paste -sd, -)" '"sessionId","language"'

call "Malformed JSON" 400 POST /sessions '{"sessionId": "x", "language": '
check "code" "$(field code)" malformed_json

call "Wrong content type" 415 POST /sessions "{\"sessionId\":\"$SID\",\"language\":\"en-US\"}" text/plain

call "limit out of range (1-100)" 400 GET "/sessions/$SID?limit=500"

call "Session that does not exist" 404 GET "/sessions/$MISSING"
check "code" "$(field code)" session_not_found

call "Unknown route" 404 GET /no-such-route

call "Wrong method" 405 PUT /sessions/x

echo
echo "${YELLOW}${BOLD}### Completing a session${RESET}"
call "Complete (no body means completed)" 200 POST "/sessions/$SID/complete"
ended_at=$(field endedAt)
check "status" "$(field status)" completed
if [[ "$ended_at" == null || -z "$ended_at" ]]; then mismatch "endedAt is null after completion"; fi

call "Complete again: 200, same endedAt" 200 POST "/sessions/$SID/complete" '{"status":"completed"}'
check "endedAt" "$(field endedAt)" "$ended_at"

call "Complete with another terminal status: 409 session_already_ended" 409 POST "/sessions/$SID/complete" \
    '{"status":"failed"}'
check "code" "$(field code)" session_already_ended

call "Complete a session that does not exist: 404" 404 POST "/sessions/$MISSING/complete"
check "code" "$(field code)" session_not_found

call "New event after completion: 409 session_ended" 409 POST "/sessions/$SID/events" \
    '{"eventId":"e-008","type":"user_speech","payload":{"text":"Hello? Are you still there?"}}'
check "code" "$(field code)" session_ended

call "Retry of an event recorded before completion is still a 200" 200 POST "/sessions/$SID/events" \
    '{"eventId":"e-007","type":"system","payload":{"event":"transfer","to":"agent-queue"}}'
check "seq of the retried e-007" "$(field seq)" 7

call "Final read" 200 GET "/sessions/$SID"
check "status" "$(field status)" completed
check "eventCount" "$(field eventCount)" 7
check "endedAt" "$(field endedAt)" "$ended_at"

echo
echo "${YELLOW}${BOLD}### Finding calls: list and filter${RESET}"
call "The calls of this demo's campaign, newest first" 200 GET "/sessions?metadata.campaign=demo&limit=5"
check "the demo call is listed first" "$( { grep -o '"sessionId":"[^"]*"' "$RESP" || true; } | head -n 1)" "\"sessionId\":\"$SID\""
call "Completed calls only" 200 GET "/sessions?status=completed&limit=1"
call "A bad filter lists every problem" 400 GET "/sessions?status=gone&limit=0"
check "code" "$(field code)" validation_failed

echo
echo "${YELLOW}${BOLD}### A call whose client went away ends by itself${RESET}"
TIMED="$SID-timer"
call "Create a call with a 1-second inactivity timer" 201 POST /sessions \
    "{\"sessionId\":\"$TIMED\",\"language\":\"en-US\",\"inactivityTimeoutSeconds\":1}"
check "expiresAt is set" "$([[ "$(field expiresAt)" != null ]] && echo yes || echo no)" yes
sleep 1.5
call "After the deadline it has ended: failed, inactivity_timeout" 200 GET "/sessions/$TIMED"
check "status" "$(field status)" failed
check "endedReason" "$(field endedReason)" inactivity_timeout
call "An event after the deadline: 409 session_ended" 409 POST "/sessions/$TIMED/events" \
    '{"eventId":"late-1","type":"user_speech","payload":{"text":"hello?"}}'
check "code" "$(field code)" session_ended

echo
echo "${YELLOW}${BOLD}### Live transcript (Server-Sent Events)${RESET}"
LIVE="$SID-live"
call "A call to follow live" 201 POST /sessions "{\"sessionId\":\"$LIVE\",\"language\":\"en-US\"}"
call "Its first event" 201 POST "/sessions/$LIVE/events" \
    '{"eventId":"live-1","type":"user_speech","payload":{"text":"Is anyone there?"}}'
STEPS=$((STEPS + 1))
echo
echo "${CYAN}${BOLD}== $STEPS. Follow it: replay, caught-up, then events as they come, then the end${RESET}  ${DIM}(expect 2 events, caught-up, session-ended)${RESET}"
echo "${DIM}\$ curl -N -H 'Accept: text/event-stream' '$BASE/sessions/$LIVE/events' &${RESET}"
STREAM_OUT=$(mktemp)
curl -sS -N --max-time 20 -H 'Accept: text/event-stream' "$BASE/sessions/$LIVE/events" >"$STREAM_OUT" &
STREAM_PID=$!
for _ in $(seq 1 100); do grep -q '^event: caught-up' "$STREAM_OUT" && break; sleep 0.1; done
QUIET=1
call "An event while the stream is open" 201 POST "/sessions/$LIVE/events" \
    '{"eventId":"live-2","type":"bot_speech","payload":{"text":"Yes, I am here."}}'
call "End the call: the stream sends session-ended and closes" 200 POST "/sessions/$LIVE/complete"
QUIET=0
wait "$STREAM_PID" || true
cat "$STREAM_OUT"
check "events streamed" "$(grep -c '^event: event' "$STREAM_OUT")" 2
check "ids" "$(grep '^id: ' "$STREAM_OUT" | tr -d 'id: ' | tr '\n' ' ')" "1 2 "
check "caught-up after" "$(grep -A1 '^event: caught-up' "$STREAM_OUT" | tail -n 1)" 'data: {"seq":1}'
check "last frame" "$(grep '^event: ' "$STREAM_OUT" | tail -n 1)" "event: session-ended"
STEPS=$((STEPS + 1))
echo
echo "${CYAN}${BOLD}== $STEPS. Resume after id 1 (what EventSource does after a drop)${RESET}  ${DIM}(expect only event 2)${RESET}"
echo "${DIM}\$ curl -N -H 'Accept: text/event-stream' -H 'Last-Event-ID: 1' '$BASE/sessions/$LIVE/events'${RESET}"
curl -sS -N --max-time 10 -H 'Accept: text/event-stream' -H 'Last-Event-ID: 1' "$BASE/sessions/$LIVE/events" >"$STREAM_OUT" || true
((QUIET)) || cat "$STREAM_OUT"
check "ids after resuming" "$(grep '^id: ' "$STREAM_OUT" | tr -d 'id: ' | tr '\n' ' ')" "2 "
rm -f "$STREAM_OUT"

echo
echo "${YELLOW}${BOLD}### Export and erasure${RESET}"
STEPS=$((STEPS + 1))
echo
echo "${CYAN}${BOLD}== $STEPS. Export the transcript as NDJSON${RESET}  ${DIM}(expect 7 lines)${RESET}"
echo "${DIM}\$ curl -H 'Accept: application/x-ndjson' '$BASE/sessions/$SID/events'${RESET}"
lines=$(curl -sS --max-time 10 -H 'Accept: application/x-ndjson' "$BASE/sessions/$SID/events" | tee "$RESP" | wc -l | tr -d ' ')
((QUIET)) || cat "$RESP"
check "exported lines" "$lines" 7
call "Erase the call" 204 DELETE "/sessions/$SID"
call "Erasing again is fine" 204 DELETE "/sessions/$SID"
call "Every route for it now answers 410" 410 GET "/sessions/$SID"
check "code" "$(field code)" session_deleted
call "A late retry of its create cannot bring it back: 409" 409 POST /sessions \
    "{\"sessionId\":\"$SID\",\"language\":\"en-US\"}"
check "code" "$(field code)" session_deleted

echo
echo "${YELLOW}${BOLD}### The change feed: every change to every call, in order${RESET}"
call "The feed's first page: the first call's creation first" 200 GET "/changes?limit=5"
check "more after the first page" "$(field hasMore)" true
call "Only ends and erasures" 200 GET "/changes?types=session.ended,session.deleted&limit=1000"
check "the erased call's changes carry no data but its id" "$(grep -q "\"data\":{\"sessionId\":\"$SID\"}" "$RESP" && echo yes)" yes
FSID="$SID-feed"
STEPS=$((STEPS + 1))
echo
echo "${CYAN}${BOLD}== $STEPS. Follow the feed live while a call happens${RESET}  ${DIM}(expect session.created, event.appended, session.ended)${RESET}"
echo "${DIM}\$ curl -N -H 'Accept: text/event-stream' '$BASE/changes?after=now' &${RESET}"
FEED_OUT=$(mktemp)
curl -sS -N --max-time 4 -H 'Accept: text/event-stream' "$BASE/changes?after=now" >"$FEED_OUT" 2>/dev/null &
FEED_PID=$!
for _ in $(seq 1 50); do grep -q '^retry:' "$FEED_OUT" && break; sleep 0.1; done
QUIET=1
call "Create a call" 201 POST /sessions "{\"sessionId\":\"$FSID\",\"language\":\"en-US\"}"
call "Add an event" 201 POST "/sessions/$FSID/events" '{"eventId":"f-1","type":"user_speech","payload":{"text":"Hello?"}}'
call "End it" 200 POST "/sessions/$FSID/complete"
QUIET=0
wait "$FEED_PID" || true
grep '^event: ' "$FEED_OUT" || true
check "the feed's frames" "$(grep '^event: ' "$FEED_OUT" | tr '\n' ' ')" "event: session.created event: event.appended event: session.ended "
rm -f "$FEED_OUT"
call "A cursor that no answer gave: 400 invalid_cursor" 400 GET "/changes?after=not-a-cursor"
check "code" "$(field code)" invalid_cursor

echo
echo "${YELLOW}${BOLD}### Search: find calls by what was said${RESET}"
SSID="$SID-search"
QUIET=1
call "Create a call" 201 POST /sessions "{\"sessionId\":\"$SSID\",\"language\":\"en-US\",\"metadata\":{\"team\":\"billing\"}}"
call "The caller asks" 201 POST "/sessions/$SSID/events" '{"eventId":"s-1","type":"user_speech","payload":{"text":"I would like a REFUND for my café order"}}'
call "The bot answers" 201 POST "/sessions/$SSID/events" '{"eventId":"s-2","type":"bot_speech","payload":{"text":"Our refund policy covers that, thank you"}}'
QUIET=0
call "Words, any order, any case or accent: found as soon as stored" 200 GET "/search?q=refund+cafe&metadata.team=billing"
check "the hit" "$(first_of eventId)" '"eventId":"s-1"'
check "its highlights (UTF-16 offsets)" "$(first_of highlights)" '"highlights":[[15,21],[29,33]]'

call "A phrase, leaving out what the bot said" 200 GET "/search?q=%22refund+policy%22+-thank&metadata.team=billing"
check "hits" "$(grep -c '"eventId"' "$RESP" || true)" 0
call "Only the bot, newest first" 200 GET "/search?q=ref*&type=bot_speech&order=newest&metadata.team=billing"
check "the hit" "$(first_of eventId)" '"eventId":"s-2"'
call "A phrase left open: 400" 400 GET "/search?q=%22refund"
check "code" "$(field code)" validation_failed

echo
echo "${YELLOW}${BOLD}### Analytics: calls per hour or day, in any time zone${RESET}"
TSID="$SID-stats"
QUIET=1
call "Create a call" 201 POST /sessions "{\"sessionId\":\"$TSID\",\"language\":\"en-US\",\"metadata\":{\"team\":\"$TSID\"}}"
call "The caller speaks" 201 POST "/sessions/$TSID/events" '{"eventId":"t-1","type":"user_speech","payload":{"text":"hello"}}'
call "The caller hangs up" 200 POST "/sessions/$TSID/complete" '{"reason":"caller_hangup"}'
QUIET=0
call "The last 24 hours, hourly in Kolkata, by team" 200 GET "/stats?bucket=hour&tz=Asia/Kolkata&groupBy=metadata.team&from=$(date -u -d '-1 day' +%Y-%m-%dT%H:%M:%SZ)"
check "this call's team: calls, ended, events" "$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print([(g["calls"], g["ended"], g["events"]["total"]) for g in d["groups"] if g["group"] == sys.argv[2]])' "$RESP" "$TSID")" "[(1, 1, 1)]"
call "An unknown zone: 400" 400 GET "/stats?tz=Mars/Olympus_Mons"
check "code" "$(field code)" validation_failed

echo
echo "${YELLOW}${BOLD}### Webhooks: every change pushed to a receiver, signed${RESET}"
# A receiver on loopback that logs each request's webhook-id and body, answering 204.
RECEIVED="$WORK/received.log"
python3 - "$RECEIVED" >"$WORK/receiver.port" 2>/dev/null <<'PY' &
import http.server, sys
out = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with open(out, "a") as f:
            f.write(self.headers.get("webhook-id", "") + " " + body.decode() + "\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), H)
print(server.server_port, flush=True)
server.serve_forever()
PY
RECEIVER_PID=$!
for ((i = 0; i < 40; i++)); do [[ -s "$WORK/receiver.port" ]] && break; sleep 0.1; done
HOOK="http://127.0.0.1:$(cat "$WORK/receiver.port")/hook"
WSID="$SID-hooks"
# (Receivers on loopback and private addresses are refused too, unless
# WEBHOOK_ALLOW_PRIVATE_NETWORKS=true, which a service this script starts has, for its receiver.)
call "Only http and https receivers" 400 POST /webhooks '{"url":"ftp://files.example.com/calls"}'
check "the field" "$(first_error_field)" url
# Register the receiver; a service that refuses loopback receivers (without
# WEBHOOK_ALLOW_PRIVATE_NETWORKS=true) answers 400, and the rest of this section is skipped.
code=$(curl -s -o "$RESP" -w '%{http_code}' -X POST "$BASE/webhooks" -H 'Content-Type: application/json' \
    -d "{\"url\":\"$HOOK\",\"types\":[\"session.created\",\"session.ended\"],\"description\":\"demo\"}")
if [[ "$code" == 201 ]]; then
    WID=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$RESP")
    call "The receiver, registered for session.created and session.ended (the secret was in the create's answer only)" 200 GET "/webhooks/$WID"
    QUIET=1
    call "Create a call" 201 POST /sessions "{\"sessionId\":\"$WSID\",\"language\":\"en-US\"}"
    call "End it" 200 POST "/sessions/$WSID/complete" '{"reason":"caller_hangup"}'
    QUIET=0
    for ((i = 0; i < 50; i++)); do [[ "$(grep -c "$WSID" "$RECEIVED" 2>/dev/null || true)" -ge 2 ]] && break; sleep 0.1; done
    check "what the receiver got" "$(grep -o '"type":"[a-z.]*"' "$RECEIVED" | paste -sd, -)" '"type":"session.created","type":"session.ended"'
    call "The delivery log, newest first" 200 GET "/webhooks/$WID/deliveries"
    check "statuses" "$(grep -o '"status":"[a-z]*"' "$RESP" | paste -sd, -)" '"status":"succeeded","status":"succeeded"'
    call "Send a test message" 202 POST "/webhooks/$WID/test"
    call "Rotate the secret (the old one signs for 24 h more)" 200 POST "/webhooks/$WID/rotate-secret"
    call "Remove the endpoint" 204 DELETE "/webhooks/$WID"
else
    echo "${DIM}(this service refuses receivers on loopback: it runs without WEBHOOK_ALLOW_PRIVATE_NETWORKS=true; skipped)${RESET}"
fi
kill "$RECEIVER_PID" 2>/dev/null || true

# ---------------------------------------------------------------------------------------------
echo
if ((MISMATCHES == 0)); then
    echo "${GREEN}${BOLD}demo: $STEPS steps, $CHECKS checks, all as expected${RESET}"
    exit 0
fi
echo "${RED}${BOLD}demo: $STEPS steps, $CHECKS checks, $MISMATCHES not as expected:${RESET}"
printf '%s' "$MISMATCH_LIST"
if [[ -n "$SERVICE_PID" ]]; then
    echo "last lines of the service log:"
    tail -n 20 "$LOG" | strip_ansi || true
fi
exit 1
