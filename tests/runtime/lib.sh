# lib.sh - shared by the runtime tests: a scratch dir, a cairnd started in
# the background with its own admin socket, polling with a deadline (never
# a bare sleep standing in for an event), and cleanup on any exit.
set -eu
: "${CAIRND:?}" "${CAIRN:?}" "${PLUGIN_DIR:?}"

T=$(mktemp -d "${TMPDIR:-/tmp}/cairn-rt.XXXXXX")
ADMIN="ipc://$T/admin.sock"
DPID=""

# Cross builds: EMULATOR (e.g. "qemu-aarch64-static -L SYSROOT") runs the
# target's executables.  $CAIRND and $CAIRN (and the integration tests'
# $MQTT_REC and $PRODUCER, when set) become wrappers that exec it,
# so they stay one word and $! is still cairnd's pid; `uname -m` names
# the target machine, as it would on the board.
if [ -n "${EMULATOR:-}" ]; then
    mkdir "$T/bin"
    for v in CAIRND CAIRN MQTT_REC PRODUCER; do
        eval "exe=\${$v:-}"
        [ -n "$exe" ] || continue
        printf '#!/bin/sh\nexec %s "%s" "$@"\n' "$EMULATOR" "$exe" >"$T/bin/$v"
        chmod +x "$T/bin/$v"
        eval "$v=\$T/bin/\$v"
    done
    uname() {
        if [ "$*" = "-m" ]; then echo "${TARGET_MACHINE:?}"; else command uname "$@"; fi
    }
fi

cleanup() {
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
        kill -KILL "$DPID" 2>/dev/null || true
    fi
    rm -rf "$T"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/*.log; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }
    done
    exit 1
}

ok() { echo "ok - $*"; }

cli() { "$CAIRN" -s "$ADMIN" "$@"; }

# config FILE: writes a config with this test's runtime section, then the
# rest from standard input (a plugins: list, usually).
config() {
    {
        printf 'runtime:\n  name: rt-test\n  data_dir: %s/data\n' "$T"
        printf '  admin: %s\n  log_level: debug\n' "$ADMIN"
        cat
    } >"$1"
}

# wait_for SECONDS COMMAND...: runs COMMAND until it succeeds, or fails the
# test after SECONDS.
wait_for() {
    limit=$1
    shift
    end=$(($(date +%s) + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || fail "timed out after ${limit}s: $*"
        sleep 0.05
    done
}

# start CONFIG: cairnd in the background; returns once the admin answers.
start() {
    "$CAIRND" -c "$1" -P "$PLUGIN_DIR" >"$T/cairnd.log" 2>&1 &
    DPID=$!
    wait_for 20 cli status
}

# stop: SIGTERM, and the daemon must exit 0.
stop() {
    kill -TERM "$DPID"
    rc=0
    wait "$DPID" || rc=$?
    DPID=""
    [ "$rc" -eq 0 ] || fail "cairnd exited $rc on SIGTERM"
}

# json_field JSON KEY: the number after "KEY": in JSON.
json_field() {
    printf '%s' "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"
}
