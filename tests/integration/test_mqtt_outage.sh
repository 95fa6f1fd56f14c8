# Broker outages during a stream: the fault producer publishes COUNT
# messages (8 ordering keys) through the admin socket into a durable QoS 1
# route while the broker is first shut down (SIGTERM: it saves its state),
# then frozen (SIGSTOP: the link hangs until the keepalive gives up), each
# time for part of the stream.  The backlog must grow in the outbox while
# the broker is away and drain when it is back.  At the cloud subscriber
# (persistent session, QoS 1) every accepted message arrives, duplicates
# only with the same cairn-id, and within each key in order.
. "$SRC_DIR/tests/runtime/lib.sh"
. "$SRC_DIR/tests/integration/lib_mqtt.sh"
COUNT=${OUTAGE_COUNT:-20000}
KEYS=8

broker_start
config "$T/c.yaml" <<EOF
plugins:
  - name: cloud
    path: mqtt-bridge.so
    config:
      port: $BPORT
      keepalive: 5s
      reconnect_initial: 100ms
      reconnect_max: 1s
      connect_timeout: 3s
      uplink:
        - {filter: "telemetry/#", topic: "devices/{runtime}/{2}", qos: 1}
EOF
sed -i 's/log_level: debug/log_level: info/' "$T/c.yaml"

bg "$MQTT_REC" sub -p "$BPORT" -q 1 -t 'devices/#' -o "$T/rec.out" \
    -i rec-outage -n "$COUNT" -T 200
REC=$!
start "$T/c.yaml"
wait_for 20 status_has cloud "connected to 127.0.0.1:$BPORT"
bg "$PRODUCER" "$ADMIN" telemetry/line "$COUNT" "$KEYS" "$T/producer.log"
PROD=$!

# Outage 1: the broker shuts down; the producer goes on.
wait_for 60 lines_ge "$T/producer.log" $((COUNT / 5))
broker_stop
wait_for 20 status_has cloud "disconnected: "
d1=$(depth cloud)
wait_for 60 lines_ge "$T/producer.log" $((COUNT * 2 / 5))
wait_for 20 depth_over cloud $((d1 + COUNT / 10))
d2=$(depth cloud)
ok "broker down: backlog $d1 -> $d2 while the stream goes on ($(status cloud))"
broker_start
wait_for 30 status_has cloud "connected to"
ok "broker back: reconnected"

# Outage 2: the broker freezes; the keepalive notices.
wait_for 60 lines_ge "$T/producer.log" $((COUNT * 3 / 5))
kill -STOP "$BPID"
d1=$(depth cloud)
wait_for 30 status_has cloud "disconnected: "
wait_for 60 lines_ge "$T/producer.log" $((COUNT * 4 / 5))
wait_for 20 depth_over cloud $((d1 + COUNT / 10))
ok "broker frozen: backlog $d1 -> $(depth cloud) ($(status cloud))"
kill -CONT "$BPID"
wait_for 30 status_has cloud "connected to"

wait "$PROD" || fail "producer failed"
wait_for 120 depth_is cloud 0
ok "backlog drained: outbox empty"
rc=0
wait "$REC" || rc=$?
[ $rc -eq 0 ] || fail "the subscriber did not see all $COUNT messages"
"$MQTT_REC" check "$T/rec.out" "$KEYS" "$T/producer.log" >"$T/check.log" ||
    fail "check: $(cat "$T/check.log")"
ok "cloud: $(tail -1 "$T/check.log")"
wait_for 5 metric_ge mqtt_acked_total cloud "$COUNT"
metric_ge mqtt_reconnects_total cloud 2 ||
    fail "reconnects: $(metric mqtt_reconnects_total cloud)"
ok "$(metric mqtt_acked_total cloud) acked, $(metric mqtt_reconnects_total cloud) reconnects"
stop
