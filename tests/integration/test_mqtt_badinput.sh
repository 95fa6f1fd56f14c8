# Bad input both ways; the bridge logs it, counts it, loses nothing it
# accepted, and keeps going.  Uplink: a payload over max_payload and a
# topic whose template needs a level the bus topic lacks become dead
# letters with the reason; a message the broker refuses as too large
# (PUBACK reason code, MQTT 5) too.  Downlink: an oversized message, an
# envelope route fed bytes that are no envelope, and a bus topic template
# that cannot be filled are dropped and counted; a real envelope arrives
# with its own id, and its redelivery is dropped as a duplicate.  After
# all that, messages still flow both ways.
. "$SRC_DIR/tests/runtime/lib.sh"
. "$SRC_DIR/tests/integration/lib_mqtt.sh"

printf 'message_size_limit 1500\n' >"$T/broker.extra"
broker_start
config "$T/c.yaml" <<EOF2
plugins:
  - {name: tally, path: counter.so, config: {filter: ""}}
  - name: cloud
    path: mqtt-bridge.so
    config:
      port: $BPORT
      max_payload: 2KiB
      reconnect_max: 1s
      uplink:
        - {filter: "up/#", topic: "cloud/{2}"}
        - {filter: "deep/#", topic: "cloud/deep/{4}"}
        - {filter: "env/#", topic: "cloud/env", payload: envelope}
  - name: down           # max_payload below the broker's limit
    path: mqtt-bridge.so
    config:
      port: $BPORT
      max_payload: 1KiB
      reconnect_max: 1s
      downlink:
        - {filter: "down/raw/#", topic: "cmd/{3}"}
        - {filter: "down/env/#", topic: "cmd/env/{3}", payload: envelope}
        - {filter: "down/short/#", topic: "cmd/{7}"}
EOF2
bg "$MQTT_REC" sub -p "$BPORT" -q 1 -t 'cloud/#' -o "$T/rec.out" -i rec-bad -T 120
start "$T/c.yaml"
wait_for 20 status_has cloud "connected to"
wait_for 20 status_has down "connected to"
bg "$CAIRN" -s "$ADMIN" sub -v -t 60 'cmd/#' >"$T/bus.out"
bus_ready() {
    cli pub cmd/probe p >/dev/null
    grep -q '^cmd/probe' "$T/bus.out"
}
wait_for 20 bus_ready

# ---- uplink --------------------------------------------------------------
big=$(head -c 3000 /dev/zero | tr '\0' x)
cli pub up/big "{\"seq\":1,\"pad\":\"$big\"}" >/dev/null
cli pub deep/a/b '{"seq":2}' >/dev/null
mid=$(head -c 1800 /dev/zero | tr '\0' y)
cli pub up/refused "{\"seq\":3,\"pad\":\"$mid\"}" >/dev/null
cli pub up/fine '{"seq":4}' >/dev/null
wait_for 20 grep -aq '^cloud/fine	' "$T/rec.out"
wait_for 20 metric_ge mqtt_dead_total cloud 3
cli dlq list >"$T/dlq.out"
grep -q ' cloud 1 .* payload larger than max_payload$' "$T/dlq.out" ||
    fail "no dead letter for the big payload: $(cat "$T/dlq.out")"
grep -q ' cloud 1 .* fewer levels than the template uses$' "$T/dlq.out" ||
    fail "no dead letter for the template: $(cat "$T/dlq.out")"
grep -q ' cloud 1 .* refused by the broker: Packet too large' "$T/dlq.out" ||
    fail "no dead letter for the broker's refusal: $(cat "$T/dlq.out")"
[ "$(grep -ac '^cloud/big\|^cloud/deep\|^cloud/refused' "$T/rec.out")" = 0 ] ||
    fail "a bad message reached the cloud"
wait_for 10 depth_is cloud 0
status_has cloud "connected to" || fail "not connected after bad uplink input"
ok "uplink: oversized, untemplatable and refused messages are dead letters with reasons"

# ---- downlink ------------------------------------------------------------
head -c 1200 /dev/zero | tr '\0' z >"$T/big.bin"
mosquitto_pub -p "$BPORT" -q 1 -t down/raw/big -f "$T/big.bin"
printf '\377\377\377not cbor' >"$T/junk.bin"
mosquitto_pub -p "$BPORT" -q 1 -t down/env/junk -f "$T/junk.bin"
mosquitto_pub -p "$BPORT" -q 1 -t down/short/x -m short
wait_for 20 metric_ge mqtt_downlink_errors_total down 3
for w in 'larger than max_payload' 'not a valid envelope' 'fewer levels'; do
    grep -q "down: downlink message on .* dropped: .*$w" "$T/cairnd.log" ||
        fail "no log line for: $w"
done

# A real envelope: the uplink's envelope route makes one.
bg mosquitto_sub -p "$BPORT" -t cloud/env -C 1 -N >"$T/env.bin"
sleep 0.3
id=$(cli pub env/orig '{"seq":5}')
wait_for 20 test -s "$T/env.bin"
for n in 1 2; do
    mosquitto_pub -p "$BPORT" -q 1 -t down/env/e -f "$T/env.bin"
done
mosquitto_pub -p "$BPORT" -q 1 -t down/raw/after -m after
wait_for 20 grep -q '^cmd/after after$' "$T/bus.out"
wait_for 10 metric_ge mqtt_downlink_duplicates_total down 1
[ "$(grep -c '^cmd/env/e {"seq":5}$' "$T/bus.out")" = 1 ] ||
    fail "envelope downlink: $(grep -c 'cmd/env/e' "$T/bus.out") deliveries"
grep -q '^cmd/big\|^cmd/junk\|^cmd/x' "$T/bus.out" && fail "bad downlink reached the bus"
[ "$(metric mqtt_downlink_duplicates_total down)" = 1 ] || fail "duplicates"
ok "downlink: oversized, malformed, untemplatable dropped and counted; envelope id $id deduplicated"

status_has cloud "connected to" || fail "not connected at the end"
status_has down "connected to" || fail "not connected at the end"
cli pub up/last '{"seq":6}' >/dev/null
wait_for 20 grep -aq '^cloud/last	' "$T/rec.out"
ok "still flowing both ways"
stop
