# lib_mqtt.sh - shared by the MQTT integration tests, sourced after
# tests/runtime/lib.sh: a real mosquitto on a loopback port of its own
# (own config file and persistence dir under $T, never the system
# service) and the recorder; bg and the readers for metrics, status and
# outbox are in lib_broker.sh.
: "${MQTT_REC:?}" "${PRODUCER:?}"

MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MOSQUITTO" ] || fail "mosquitto not installed (sh tests/install-deps.sh)"
BPID=""
BPORT=""
. "$SRC_DIR/tests/integration/lib_broker.sh"

mqtt_cleanup() {
    if [ -n "$BPID" ]; then
        kill -CONT "$BPID" 2>/dev/null || true
        kill -KILL "$BPID" 2>/dev/null || true
    fi
    bg_stop
    cleanup
}
trap mqtt_cleanup EXIT

# broker_conf PORT: the broker's config (listener, persistence, limits)
# followed by $T/broker.extra if the test wrote one, with @PORT1@ there
# replaced by PORT + 1 (a second listener).
broker_conf() {
    mkdir -p "$T/broker"
    {
        printf 'listener %s 127.0.0.1\n' "$1"
        printf 'allow_anonymous true\n'
        # As root, mosquitto would switch to its own user, which cannot
        # write the persistence dir under $T.
        printf 'user %s\n' "$(id -un)"
        printf 'persistence true\npersistence_location %s/broker/\n' "$T"
        printf 'autosave_interval 1\n'
        printf 'max_queued_messages 1000000\nmax_inflight_messages 100\n'
        printf 'log_dest stderr\nlog_type error\nlog_type warning\n'
        printf 'log_type notice\nlog_type information\n'
        if [ -f "$T/broker.extra" ]; then
            sed "s/@PORT1@/$(($1 + 1))/g" "$T/broker.extra"
        fi
    } >"$T/broker.conf"
}

broker_listening() {
    grep -q "Opening ipv4 listen socket on port $BPORT" "$T/broker.log"
}

# broker_start: on BPORT, or a free random port the first time.
broker_start() {
    tries=0
    while :; do
        [ -n "$BPORT" ] ||
            BPORT=$(( ($(od -An -N2 -tu2 /dev/urandom) % 30000) + 20000 ))
        broker_conf "$BPORT"
        "$MOSQUITTO" -c "$T/broker.conf" >>"$T/broker.log" 2>&1 &
        BPID=$!
        end=$(($(date +%s) + 10))
        while kill -0 "$BPID" 2>/dev/null && ! broker_listening; do
            [ "$(date +%s)" -lt "$end" ] || fail "broker did not start"
            sleep 0.05
        done
        if kill -0 "$BPID" 2>/dev/null; then
            return 0
        fi
        tries=$((tries + 1))
        [ $tries -lt 20 ] || fail "no free port for the broker"
        BPORT=""
    done
}

# broker_stop: SIGTERM (mosquitto saves its persistence file) and wait.
broker_stop() {
    kill -TERM "$BPID"
    wait "$BPID" 2>/dev/null || true
    BPID=""
    broker_rotate
}

# broker_kill [SIGNAL]: the broker dies without saving (default KILL).
broker_kill() {
    kill "-${1:-KILL}" "$BPID"
    wait "$BPID" 2>/dev/null || true
    BPID=""
    broker_rotate
}

# The next start's "listening" line must not be found in an old log.
broker_rotate() {
    cat "$T/broker.log" >>"$T/broker-old.log"
    : >"$T/broker.log"
}

# depth_now DEST: as depth, asking again (at most 50 times) while the
# admin does not answer, e.g. a daemon that is still busy starting.
depth_now() {
    n=0
    d=$(depth "$1")
    while [ -z "$d" ] && [ $n -lt 50 ]; do
        sleep 0.1
        d=$(depth "$1")
        n=$((n + 1))
    done
    echo "$d"
}
