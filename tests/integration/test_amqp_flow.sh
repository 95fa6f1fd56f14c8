# Both directions against a real RabbitMQ, with the topology declared by
# the bridges: uplink with publisher confirms (ids, headers, order),
# unroutable and nacked messages ending as dead letters with the reason,
# a downlink work queue shared by two bridge instances (each message on
# the bus once), redeliveries dropped by the inbox, and poison messages
# rejected into RabbitMQ's dead-letter queue.
. "$SRC_DIR/tests/runtime/lib.sh"
. "$SRC_DIR/tests/integration/lib_amqp.sh"
COUNT=${FLOW_COUNT:-1000}
WORK=400

broker_start
ok "rabbitmq up on 127.0.0.1:$BPORT"
config "$T/c.yaml" <<EOF
retry:
  initial: 100ms
  max: 200ms
  max_attempts: 3
plugins:
  - name: cloud
    path: amqp-bridge.so
    config:
      port: $BPORT
      heartbeat: 5s
      reconnect_initial: 100ms
      reconnect_max: 1s
      max_payload: 1KiB
      exchanges:
        - {name: up, type: topic}
        - {name: dlx, type: fanout}
      queues:
        - {name: telemetry}
        - {name: full, max_length: 5, overflow: reject-publish}
        - {name: work, dead_letter_exchange: dlx}
        - {name: envq, dead_letter_exchange: dlx}
        - {name: once}
        - {name: work.dead}
      bindings:
        - {queue: telemetry, exchange: up, routing_key: "devices.#"}
        - {queue: full, exchange: up, routing_key: "full.#"}
        - {queue: work.dead, exchange: dlx, routing_key: ""}
      uplink:
        - {filter: "telemetry/#", exchange: up, routing_key: "devices.{runtime}.{2}"}
        - {filter: "full/#", exchange: up, routing_key: "full.{2}"}
        - {filter: "nowhere/#", exchange: up, routing_key: "nobody.{2}"}
      downlink:
        - {queue: work, topic: "jobs/{1}", prefetch: 5}
        - {queue: once, topic: "once/{1}"}
        - {queue: envq, topic: "env/{1}", payload: envelope}
  - name: cloud2
    path: amqp-bridge.so
    config:
      port: $BPORT
      reconnect_initial: 100ms
      reconnect_max: 1s
      max_payload: 1KiB
      queues:
        - {name: work, dead_letter_exchange: dlx}
      downlink:
        - {queue: work, topic: "jobs/{1}", prefetch: 5}
EOF
sed -i 's/log_level: debug/log_level: info/' "$T/c.yaml"
start "$T/c.yaml"
wait_for 30 status_has cloud "connected to 127.0.0.1:$BPORT"
wait_for 30 status_has cloud2 "connected to 127.0.0.1:$BPORT"
ok "both instances connected ($(status cloud))"

# ---- uplink with confirms ---------------------------------------------------
"$PRODUCER" "$ADMIN" telemetry/line "$COUNT" 4 "$T/producer.log" ||
    fail "producer"
wait_for 60 depth_is cloud 0
"$AMQP_REC" get -p "$BPORT" -q telemetry -o "$T/up.out" -n "$COUNT" -T 60 ||
    fail "queue telemetry: $(wc -l <"$T/up.out") messages"
"$AMQP_REC" check "$T/up.out" 4 "$T/producer.log" >"$T/check.log" ||
    fail "check: $(cat "$T/check.log")"
ok "uplink: $(tail -1 "$T/check.log")"
line=$(head -1 "$T/up.out")
echo "$line" | grep -Eq '^devices\.rt-test\.line	0	[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}	-	\{"seq":0\}' ||
    fail "first message: $line"
echo "$line" | grep -q '	cairn-topic=telemetry/line' || fail "headers: $line"
echo "$line" | grep -q '	cairn-key=k0' || fail "key header: $line"
wait_for 5 metric_ge amqp_acked_total cloud "$COUNT"
ok "routing key, message-id, headers; $(metric amqp_acked_total cloud) confirmed"

# ---- unroutable and nacked: dead letters with the reason -------------------
cli pub nowhere/x '{"seq":1}' >/dev/null
for i in 1 2 3 4 5 6 7; do
    cli pub full/x "{\"seq\":$i}" >/dev/null
done
dlq_has() {
    cli dlq list >"$T/dlq.out" 2>&1
    grep -q "$1" "$T/dlq.out"
}
wait_for 30 dlq_has 'returned by the broker: 312 NO_ROUTE'
ok "unroutable: a dead letter after 3 attempts ($(grep -c NO_ROUTE "$T/dlq.out"))"
wait_for 30 dlq_has 'nacked by the broker'
wait_for 30 depth_is cloud 0
"$AMQP_REC" get -p "$BPORT" -q full -o "$T/full.out" -n 0 -T 30 ||
    fail "queue full"
[ "$(lines "$T/full.out")" -eq 5 ] || fail "queue full holds $(lines "$T/full.out")"
cli dlq list >"$T/dlq.out"
dead=$(grep -c 'nacked by the broker' "$T/dlq.out")
[ "$dead" -eq 2 ] || fail "$dead nacked dead letters, 2 expected: $(cat "$T/dlq.out")"
metric_ge amqp_returned_total cloud 3 || fail "returned metric"
metric_ge amqp_nacked_total cloud 6 || fail "nacked metric"
ok "broker nack (reject-publish): 5 queued, 2 dead letters with the reason"

# ---- downlink: a work queue, two consumers ----------------------------------
bg "$CAIRN" -s "$ADMIN" sub -v -t 120 '#' >"$T/bus.out"
bus_ready() {
    cli pub probe/x p >/dev/null
    grep -q '^probe/x' "$T/bus.out"
}
wait_for 20 bus_ready
"$AMQP_REC" pub -p "$BPORT" -k work -n "$WORK" || fail "publish to work"
jobs_seen() {
    [ "$(grep -c '^jobs/work {"seq":' "$T/bus.out")" -ge "$WORK" ]
}
wait_for 60 jobs_seen
n=$(grep '^jobs/work {"seq":' "$T/bus.out" | sort -u | wc -l)
all=$(grep -c '^jobs/work {"seq":' "$T/bus.out")
[ "$n" -eq "$WORK" ] && [ "$all" -eq "$WORK" ] ||
    fail "jobs: $n distinct of $all, $WORK expected"
a=$(metric amqp_downlink_received_total cloud)
b=$(metric amqp_downlink_received_total cloud2)
[ "${a%.*}" -gt 0 ] && [ "${b%.*}" -gt 0 ] ||
    fail "one consumer did all: cloud $a, cloud2 $b"
ok "work queue: $WORK messages once each (cloud $a, cloud2 $b)"

# ---- redeliveries: the inbox drops the second copy --------------------------
"$AMQP_REC" pub -p "$BPORT" -k once -s 10000 -n 50 -d || fail "publish to once"
once_seen() {
    [ "$(grep -c '^once/once {"seq":' "$T/bus.out")" -ge 50 ]
}
wait_for 30 metric_ge amqp_downlink_duplicates_total cloud 50
wait_for 30 once_seen
cli pub probe/y p >/dev/null
wait_for 20 grep -q '^probe/y' "$T/bus.out"
n=$(grep -c '^once/once {"seq":' "$T/bus.out")
[ "$n" -eq 50 ] || fail "once: $n on the bus, 50 expected"
ok "50 messages sent twice with one message-id: 50 on the bus"

# ---- poison: rejected without requeue, dead-lettered by RabbitMQ ------------
big=$(head -c 2000 /dev/zero | tr '\0' x)
"$AMQP_REC" pub -p "$BPORT" -k work -s 900 -n 1 -b "{\"seq\":900,\"pad\":\"$big\"}" ||
    fail "publish big"
"$AMQP_REC" pub -p "$BPORT" -k envq -s 901 -n 1 -b '{"seq":901} is not CBOR' ||
    fail "publish garbage"
wait_for 30 metric_ge amqp_downlink_rejected_total cloud 1
"$AMQP_REC" get -p "$BPORT" -q work.dead -o "$T/dead.out" -n 2 -T 30 ||
    fail "work.dead: $(cat "$T/dead.out")"
grep -q '"seq":900.*x-death-reason=rejected' "$T/dead.out" ||
    fail "oversize not dead-lettered: $(cut -c1-200 "$T/dead.out")"
grep -q '"seq":901.*x-death-reason=rejected' "$T/dead.out" ||
    fail "bad envelope not dead-lettered"
grep -q 'rejected: body larger than max_payload' "$T/cairnd.log" ||
    fail "no log line for the oversize delivery"
grep -q 'rejected: body is not a valid envelope' "$T/cairnd.log" ||
    fail "no log line for the bad envelope"
ok "poison messages in RabbitMQ's dead-letter queue, with a log line each"
stop
