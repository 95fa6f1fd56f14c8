# kill -9 during a drain: a backlog of 2 x COUNT messages (8 ordering keys
# each, one stream on a QoS 1 route, one on a QoS 2 route) builds up in
# the outbox while the broker is down; then the broker comes back and,
# while the bridge drains the backlog, cairnd is killed with SIGKILL KILLS
# times at random moments (30-150 ms after the drain resumed, messages
# still waiting) and restarted; the broker pauses until the restart is done, so
# every kill falls in the drain however slow cairnd starts.  At the cloud
# subscribers every accepted message of both streams arrives, duplicates
# only with the same cairn-id, in order per key.
. "$SRC_DIR/tests/runtime/lib.sh"
. "$SRC_DIR/tests/integration/lib_mqtt.sh"
COUNT=${CRASH_COUNT:-15000}
KILLS=${CRASH_KILLS:-5}
KEYS=8

broker_start
config "$T/c.yaml" <<EOF
store:
  sync: normal           # survives kill -9 of cairnd (not power loss)
  window: 100
plugins:
  - name: cloud
    path: mqtt-bridge.so
    config:
      port: $BPORT
      keepalive: 5s
      reconnect_initial: 50ms
      reconnect_max: 200ms
      max_inflight: 20
      uplink:
        - {filter: "telemetry/q1", topic: "devices/{runtime}/q1", qos: 1}
        - {filter: "telemetry/q2", topic: "devices/{runtime}/q2", qos: 2}
EOF
sed -i 's/log_level: debug/log_level: info/' "$T/c.yaml"

# The cloud subscribers' sessions (persistent, QoS 2) exist before the
# stream, so the broker queues for them from the first message on.
bg "$MQTT_REC" sub -p "$BPORT" -q 2 -t 'devices/+/q1' -t devices/probe \
    -o "$T/rec1.out" -i rec-crash-1 -n "$COUNT" -T 200
REC1=$!
bg "$MQTT_REC" sub -p "$BPORT" -q 2 -t 'devices/+/q2' -t devices/probe \
    -o "$T/rec2.out" -i rec-crash-2 -n "$COUNT" -T 200
REC2=$!
rec_ready() {
    mosquitto_pub -p "$BPORT" -t devices/probe -m probe
    grep -aq '^devices/probe' "$T/rec1.out" && grep -aq '^devices/probe' "$T/rec2.out"
}
wait_for 20 rec_ready
broker_stop

start "$T/c.yaml"
bg "$PRODUCER" "$ADMIN" telemetry/q1 "$COUNT" "$KEYS" "$T/producer1.log"
P1=$!
"$PRODUCER" "$ADMIN" telemetry/q2 "$COUNT" "$KEYS" "$T/producer2.log" ||
    fail "producer failed"
wait "$P1" || fail "producer failed"
accepted=$(cat "$T/producer1.log" "$T/producer2.log" | grep -c '^A' || true)
[ "$(depth cloud)" -eq "$accepted" ] || fail "backlog $(depth cloud), accepted $accepted"
[ "$accepted" -eq $((2 * COUNT)) ] || fail "only $accepted of $((2 * COUNT)) accepted"
ok "backlog of $accepted messages with the broker down"
broker_start
wait_for 30 status_has cloud "connected to"
k=0
last=$accepted
depth_below() { [ "$(depth cloud)" -lt "$1" ]; }
while [ $k -lt "$KILLS" ]; do
    wait_for 30 depth_below "$last" # the drain is under way
    ms=$(( ($(od -An -N2 -tu2 /dev/urandom) % 120) + 30 ))
    sleep "$(printf '0.%03d' "$ms")"
    kill -KILL "$DPID"
    wait "$DPID" 2>/dev/null || true
    k=$((k + 1))
    # The broker sleeps while cairnd restarts: the backlog seen then is
    # the one at the kill, and the drain resumes only once the admin
    # answers, however slow the start (sanitizers).
    kill -STOP "$BPID"
    start "$T/c.yaml"
    d=$(depth_now cloud)
    kill -CONT "$BPID"
    echo "kill $k: $d waiting" >>"$T/kills.log"
    [ "${d:-0}" -gt 0 ] || fail "backlog drained before kill $k: raise CRASH_COUNT"
    last=$d
done
ok "cairnd killed with SIGKILL $k times during the drain ($(tr '\n' ',' <"$T/kills.log"))"
wait_for 120 depth_is cloud 0
for q in 1 2; do
    rc=0
    eval "wait \$REC$q" || rc=$?
    [ $rc -eq 0 ] || fail "the QoS $q subscriber did not see all $COUNT messages"
    "$MQTT_REC" check "$T/rec$q.out" "$KEYS" "$T/producer$q.log" >"$T/check$q.log" ||
        fail "check QoS $q: $(cat "$T/check$q.log")"
    ok "cloud, QoS $q route: $(tail -1 "$T/check$q.log")"
done
stop
