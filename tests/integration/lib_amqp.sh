# lib_amqp.sh - shared by the AMQP integration tests, sourced after
# tests/runtime/lib.sh: a real RabbitMQ (Debian's rabbitmq-server) on
# loopback ports of its own, with its own node name, data and log dirs,
# its own epmd (ERL_EPMD_PORT) and HOME (the Erlang cookie) under $T;
# never the system service.  bg and the readers for metrics, status and
# outbox are in lib_broker.sh.
: "${AMQP_REC:?}" "${PRODUCER:?}"

RMQ_BIN=/usr/lib/rabbitmq/bin
[ -x "$RMQ_BIN/rabbitmq-server" ] ||
    fail "rabbitmq-server not installed (sh tests/install-deps.sh)"
BPID=""
BPORT=""
. "$SRC_DIR/tests/integration/lib_broker.sh"

# The node's own pid (rabbitmq-server runs it as a child, not by exec).
node_pid() {
    cat "$T/rmq/pid" 2>/dev/null || true
}

amqp_cleanup() {
    for p in $(node_pid) $BPID; do
        kill -CONT "$p" 2>/dev/null || true
        kill -KILL "$p" 2>/dev/null || true
    done
    n=0
    while [ -n "$(node_pid)" ] && kill -0 "$(node_pid)" 2>/dev/null &&
        [ $n -lt 100 ]; do
        sleep 0.05
        n=$((n + 1))
    done
    epmd_stop
    bg_stop
    cleanup
}
trap amqp_cleanup EXIT

# The broker's environment: everything under $T/rmq, ports from BPORT
# (AMQP), BPORT+1 (distribution), BPORT+2 (epmd).
rmq_env() {
    export HOME="$T/rmq" \
        RABBITMQ_MNESIA_BASE="$T/rmq/mnesia" \
        RABBITMQ_LOG_BASE="$T/rmq/log" \
        RABBITMQ_NODENAME="cairn$BPORT@localhost" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$BPORT" \
        RABBITMQ_DIST_PORT=$((BPORT + 1)) \
        ERL_EPMD_PORT=$((BPORT + 2)) \
        ERL_EPMD_ADDRESS=127.0.0.1 \
        RABBITMQ_PID_FILE="$T/rmq/pid" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$T/rmq/enabled_plugins" \
        RABBITMQ_CONFIG_FILE="$T/rmq/rabbitmq" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$T/rmq/advanced.config" \
        RABBITMQ_CONF_ENV_FILE="$T/rmq/rabbitmq-env.conf" \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

# epmd was started by the node as a daemon on its own port; it exits on
# -kill once no node is registered.
epmd_stop() {
    if [ -n "$BPORT" ]; then
        epmd -port $((BPORT + 2)) -kill >/dev/null 2>&1 || true
    fi
}

port_free() {
    ! ss -ltn 2>/dev/null | awk '{print $4}' | grep -Eq "[:.]($1|$(($1 + 1))|$(($1 + 2))|$(($1 + 3)))\$"
}

# broker_start: on BPORT, or free random ports the first time (BPORT to
# BPORT + 3: AMQP, distribution, epmd, a test's extra listener).  Returns
# once a client can log in (RabbitMQ takes seconds to boot).
broker_start() {
    while [ -z "$BPORT" ]; do
        BPORT=$((($(od -An -N2 -tu2 /dev/urandom) % 20000) + 30000))
        port_free "$BPORT" || BPORT=""
    done
    mkdir -p "$T/rmq"
    echo '[].' >"$T/rmq/enabled_plugins"
    # A full disk alarm would block publishers: the test dir is small.
    printf 'disk_free_limit.absolute = 10MB\nloopback_users = none\n' \
        >"$T/rmq/rabbitmq.conf"
    # A test's own settings (e.g. a TLS listener), @PORT3@ = BPORT + 3.
    if [ -f "$T/broker.extra" ]; then
        sed "s/@PORT3@/$((BPORT + 3))/g" "$T/broker.extra" \
            >>"$T/rmq/rabbitmq.conf"
    fi
    (rmq_env && exec "$RMQ_BIN/rabbitmq-server") >>"$T/broker.log" 2>&1 &
    BPID=$!
    end=$(($(date +%s) + 90))
    until "$AMQP_REC" ping -p "$BPORT" 2>/dev/null; do
        kill -0 "$BPID" 2>/dev/null || fail "broker exited"
        [ "$(date +%s)" -lt "$end" ] || fail "broker did not start"
        sleep 0.2
    done
}

# broker_stop: SIGTERM to the node (a clean shutdown) and wait.
broker_stop() {
    pid=$(node_pid)
    pid=${pid:-$BPID}
    kill -TERM "$pid" 2>/dev/null || true
    n=0
    while kill -0 "$pid" 2>/dev/null && [ $n -lt 600 ]; do
        sleep 0.05
        n=$((n + 1))
    done
    kill -KILL "$pid" "$BPID" 2>/dev/null || true
    wait "$BPID" 2>/dev/null || true
    rm -f "$T/rmq/pid"
    BPID=""
}
