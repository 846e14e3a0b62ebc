#!/usr/bin/env bash
# tools/browser/run.sh: the web console's tests in a real browser (console.test.mjs,
# list-feed.test.mjs for the calls list following the change feed, search.test.mjs for the
# search view, overview.test.mjs for the overview, the start page, against GET /stats,
# webhooks.test.mjs for the webhooks page, delivering to receivers it starts on 127.0.0.1; Node's
# test runner; metadata.test.mjs and list.test.mjs check the metadata editor's merge patch and
# the list's handling of the feed in Node alone). They drive Debian's chromium with
# playwright-core (pinned in package.json + package-lock.json, `npm ci` into the git-ignored
# node_modules; Playwright's own browser download is never used: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1)
# and start the service binary themselves from SESSION_SERVICE_BIN (./run-tests.sh exports it),
# on SQLite in a temporary folder.
#
# Without chromium on PATH: as root it is installed (apt-get); otherwise this fails with the
# command that installs it. Screenshots land in tools/browser/screenshots/ (git-ignored).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { printf '[browser] %s\n' "$*" >&2; }
install_chromium="apt-get update && apt-get install -y chromium"

if [ -z "${SESSION_SERVICE_BIN:-}" ] || [ ! -x "$SESSION_SERVICE_BIN" ]; then
    log "FAILED: SESSION_SERVICE_BIN must name the built session-service binary (./run-tests.sh sets it)"
    exit 1
fi

if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        log "no chromium on PATH: installing Debian's ($install_chromium)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || {
            log "FAILED: could not install chromium; run: $install_chromium"
            exit 1
        }
    else
        log "FAILED: no chromium on PATH; install it as root with: $install_chromium"
        log "(or skip the browser tests knowingly with BROWSER_TESTS=0)"
        exit 1
    fi
fi
CHROMIUM_BIN=$(command -v chromium)
export CHROMIUM_BIN
log "browser: $CHROMIUM_BIN ($("$CHROMIUM_BIN" --version 2>/dev/null || echo 'version unknown'))"

npm_how="cd tools/browser && npm ci --ignore-scripts (Debian: apt-get install nodejs npm first)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "FAILED: no node/npm on PATH; install them, then run: $npm_how"
    exit 1
fi
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 NO_UPDATE_NOTIFIER=1
wanted=$(sed -n 's/.*"playwright-core": *"\([^"]*\)".*/\1/p' "$here/package.json")
installed() {
    [ "$(node -p 'require(process.argv[1]).version' "$here/node_modules/playwright-core/package.json" 2>/dev/null)" = "$wanted" ]
}
if ! installed; then
    log "installing playwright-core@$wanted into tools/browser/node_modules (npm ci)"
    (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2 ||
        { log "FAILED: npm ci failed; run: $npm_how"; exit 1; }
    installed || { log "FAILED: playwright-core@$wanted is still not installed; run: $npm_how"; exit 1; }
fi

cd "$here"
exec node --test --test-reporter=spec console.test.mjs list-feed.test.mjs search.test.mjs overview.test.mjs webhooks.test.mjs metadata.test.mjs list.test.mjs
