# A broker outage during a stream: the fault producer publishes COUNT
# messages (8 ordering keys) through the admin socket into a durable
# route while RabbitMQ is shut down for part of the stream and started
# again (same data dir: the durable queue and its persistent messages
# survive).  The backlog must grow in the outbox while the broker is away
# and drain when it is back; the bridge re-declares its topology.  In the
# queue: every accepted message, duplicates only with the same
# message-id, and within each key in order.
. "$SRC_DIR/tests/runtime/lib.sh"
. "$SRC_DIR/tests/integration/lib_amqp.sh"
COUNT=${OUTAGE_COUNT:-20000}
KEYS=8

broker_start
config "$T/c.yaml" <<EOF
plugins:
  - name: cloud
    path: amqp-bridge.so
    config:
      port: $BPORT
      heartbeat: 5s
      reconnect_initial: 100ms
      reconnect_max: 1s
      connect_timeout: 3s
      exchanges:
        - {name: up, type: topic}
      queues:
        - {name: telemetry}
      bindings:
        - {queue: telemetry, exchange: up, routing_key: "devices.#"}
      uplink:
        - {filter: "telemetry/#", exchange: up, routing_key: "devices.{runtime}.{2}"}
EOF
sed -i 's/log_level: debug/log_level: info/' "$T/c.yaml"
start "$T/c.yaml"
wait_for 30 status_has cloud "connected to 127.0.0.1:$BPORT"
bg "$PRODUCER" "$ADMIN" telemetry/line "$COUNT" "$KEYS" "$T/producer.log"
PROD=$!

wait_for 60 lines_ge "$T/producer.log" $((COUNT / 4))
broker_stop
wait_for 20 status_has cloud "disconnected: "
d1=$(depth cloud)
wait_for 60 lines_ge "$T/producer.log" $((COUNT / 2))
wait_for 20 depth_over cloud $((d1 + COUNT / 10))
d2=$(depth cloud)
ok "broker down: backlog $d1 -> $d2 while the stream goes on ($(status cloud))"
broker_start
wait_for 60 status_has cloud "connected to"
ok "broker back: reconnected, topology declared again"

wait "$PROD" || fail "producer failed"
wait_for 120 depth_is cloud 0
ok "backlog drained: outbox empty"
"$AMQP_REC" get -p "$BPORT" -q telemetry -o "$T/rec.out" -n "$COUNT" -T 120 ||
    fail "the queue did not hold all $COUNT messages"
"$AMQP_REC" check "$T/rec.out" "$KEYS" "$T/producer.log" >"$T/check.log" ||
    fail "check: $(cat "$T/check.log")"
ok "queue: $(tail -1 "$T/check.log")"
wait_for 5 metric_ge amqp_acked_total cloud "$COUNT"
metric_ge amqp_reconnects_total cloud 1 ||
    fail "reconnects: $(metric amqp_reconnects_total cloud)"
ok "$(metric amqp_acked_total cloud) acked, $(metric amqp_reconnects_total cloud) reconnects"
stop
