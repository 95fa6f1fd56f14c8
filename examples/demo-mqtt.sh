#!/bin/sh
# demo-mqtt.sh - the MQTT bridge: a local mosquitto on a free loopback port
# is the stand-in cloud; cairnd runs examples/mqtt.yaml (a simulated
# sensor, a counter, the bridge).  Shows readings arriving with
# mosquitto_sub, the backlog growing in `cairn outbox` while the broker is
# stopped, and draining when it is back.  demo.sh runs it after its build;
# alone it expects that build (B=build/release, or set B).
set -eu
cd "$(dirname "$0")/.."
B=${B:-build/release}
[ -x "$B/core/cairnd" ] && [ -f "$B/plugins/mqtt-bridge.so" ] ||
    { echo "build first: sh examples/demo.sh" >&2; exit 1; }
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
D=$(mktemp -d /tmp/cairn-mqtt-demo.XXXXXX)
BPID=""
DPID=""
finish() {
    [ -z "$DPID" ] || kill -TERM "$DPID" 2>/dev/null || true
    [ -z "$DPID" ] || wait "$DPID" 2>/dev/null || true
    [ -z "$BPID" ] || kill -TERM "$BPID" 2>/dev/null || true
    rm -rf "$D"
}
trap finish EXIT
cairn() { "$B/core/cairn" -c "$D/mqtt.yaml" "$@"; }
# until SECONDS COMMAND...: retries COMMAND every 0.1 s for SECONDS.
until_ok() {
    n=$(($1 * 10))
    shift
    until "$@" >/dev/null 2>&1; do
        n=$((n - 1))
        [ $n -gt 0 ] || { echo "timed out: $*" >&2; return 1; }
        sleep 0.1
    done
}
broker() {
    {
        printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$PORT"
        printf 'persistence true\npersistence_location %s/\n' "$D"
        printf 'user %s\nlog_dest file %s/broker.log\n' "$(id -un)" "$D"
    } >"$D/broker.conf"
    "$MOSQUITTO" -c "$D/broker.conf" 2>>"$D/broker.log" &
    BPID=$!
    until_ok 5 mosquitto_pub -p "$PORT" -t demo/probe -m up
}
connected() { cairn plugins | grep -q 'connected to'; }
disconnected() { cairn plugins | grep -q 'disconnected: '; }
depth() { cairn outbox | awk '$1 == "cloud" { print $2 }'; }
drained() { [ "$(depth)" -lt 5 ]; }

PORT=$(( ($(od -An -N2 -tu2 /dev/urandom) % 20000) + 30000 ))
sed -e "s/port: 18830/port: $PORT/" -e "s|/tmp/cairn-mqtt-demo|$D/data|" \
    examples/mqtt.yaml >"$D/mqtt.yaml"
echo "== mosquitto on 127.0.0.1:$PORT (the stand-in cloud)"
broker
"$B/core/cairnd" -c "$D/mqtt.yaml" -P "$B/plugins" 2>/tmp/cairn-mqtt-demo.log &
DPID=$!
until_ok 10 connected
echo "== cairn plugins"
cairn plugins
echo "== mosquitto_sub -v -t 'devices/#' -C 6   (readings at the cloud, QoS 1)"
mosquitto_sub -p "$PORT" -q 1 -v -t 'devices/#' -C 6 -W 20
echo "== mosquitto_pub -t commands/demo/hello -m hi   (a command down to the bus)"
mosquitto_pub -p "$PORT" -q 1 -t commands/demo/hello -m hi
echo "== mosquitto_rr -t requests/demo/tally   (request/response over MQTT 5)"
mosquitto_rr -p "$PORT" -t requests/demo/tally -e replies/demo -m '' -W 5 || true
echo
echo "== the broker stops: the readings wait in the outbox"
kill -TERM "$BPID"
wait "$BPID" 2>/dev/null || true
BPID=""
until_ok 20 disconnected
for i in 1 2 3; do
    sleep 1
    echo "-- cairn outbox ($i s)"
    cairn outbox
done
cairn plugins | grep '^cloud'
echo
echo "== the broker is back: the backlog drains"
waiting=$(depth)
broker
until_ok 20 connected
until_ok 20 drained
echo "-- cairn outbox ($waiting were waiting)"
cairn outbox
metrics_up() {
    cairn metrics | grep -q '^cairn_mqtt_connected{plugin="cloud"} 1$'
}
until_ok 5 metrics_up
echo "== cairn metrics | grep mqtt_"
cairn metrics | grep '^cairn_mqtt_\(connected\|reconnects_total\|acked_total\|sent_bytes_total\|downlink_received_total\)'
echo "== stopping (daemon log in /tmp/cairn-mqtt-demo.log)"
