#!/usr/bin/env bash
# tools/venv-pins.sh REQUIREMENTS...: makes sure the project's virtualenv (./.venv, git-ignored)
# has exactly the pinned `name==version` lines of each requirements file, installing them with pip
# only when one is missing or at another version. Used by run-tests.sh (via tools/test-mongodb.sh),
# fuzz/run-schemathesis.sh and tools/openapi/check.sh, so the pins are checked the same way
# everywhere. Fails, naming the command to run by hand, when they cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=".venv"
log() { printf '[venv] %s\n' "$*" >&2; }

[ "$#" -gt 0 ] || { log "usage: tools/venv-pins.sh REQUIREMENTS..."; exit 2; }

pins_installed() {
    "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import importlib.metadata as m, re, sys
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if line:
        name, version = re.split(r"==", line, maxsplit=1)
        if m.version(name.strip()) != version.strip():
            sys.exit(1)
PY
}

for requirements in "$@"; do
    [ -f "$requirements" ] || { log "no such requirements file: $requirements"; exit 2; }
    pins_installed "$requirements" && continue
    how="python3 -m venv $VENV && $VENV/bin/pip install -r $requirements (Debian: apt-get install python3-venv first)"
    log "installing the pins of $requirements into $VENV"
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        python3 -m venv "$VENV" || { log "cannot create $VENV; run: $how"; exit 1; }
    fi
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" ||
        { log "pip could not install $requirements; run: $how"; exit 1; }
    pins_installed "$requirements" ||
        { log "the pins in $requirements are still not all installed in $VENV; run: $how"; exit 1; }
done
