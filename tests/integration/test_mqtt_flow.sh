# Online flow, both ways, QoS 0, 1 and 2, MQTT 5 and 3.1.1: two bridge
# instances (one per protocol) in one cairnd, against a real mosquitto.
# Uplink: every message arrives once on the templated topic at the
# route's QoS, in order; on MQTT 5 with its bus id as the cairn-id user
# property (on 3.1.1 without); payload: envelope carries the whole CBOR
# envelope; a non-durable route passes through.  Downlink: commands at
# each QoS reach the mapped bus topic once; a QoS 1 redelivery with the
# same cairn-id is dropped and counted.  Request/response: a request with
# a Response Topic and Correlation Data (MQTT 5), or a route's reply_topic
# (3.1.1), gets the service's reply.  Birth and offline status, retained.
. "$SRC_DIR/tests/runtime/lib.sh"
. "$SRC_DIR/tests/integration/lib_mqtt.sh"
N=10

broker_start
bridge() { # NAME PROTOCOL
    cat <<EOF
  - name: $1
    path: mqtt-bridge.so
    config:
      port: $BPORT
      protocol: "$2"
      keepalive: 5s
      reconnect_max: 1s
      uplink:
        - {filter: "up/q0/#", topic: "cloud/$1/q0/{3}", qos: 0}
        - {filter: "up/q1/#", topic: "cloud/$1/q1/{3}", qos: 1}
        - {filter: "up/q2/#", topic: "cloud/$1/q2/{3}", qos: 2}
        - {filter: "env/#", topic: "cloud/$1/env", payload: envelope}
        - {filter: "live/#", topic: "cloud/$1/live/{2}", durable: false}
      downlink:
        - {filter: "down/$1/q0/#", topic: "commands/$1/q0/{4}", qos: 0}
        - {filter: "down/$1/q1/#", topic: "commands/$1/q1/{4}", qos: 1}
        - {filter: "down/$1/q2/#", topic: "commands/$1/q2/{4}", qos: 2}
        - {filter: "req/$1/#", service: tally.count, timeout: 2s,
           reply_topic: "resp/$1/{3}"}
EOF
}
{
    printf 'plugins:\n'
    printf '  - {name: tally, path: counter.so, config: {filter: "commands/#"}}\n'
    bridge v5 5
    bridge v3 3.1.1
} | config "$T/c.yaml"

bg "$MQTT_REC" sub -p "$BPORT" -q 2 -t 'cloud/#' -t 'resp/#' -t 'cairn/#' \
    -o "$T/rec.out" -i rec-flow -T 120
start "$T/c.yaml"
wait_for 20 status_has v5 "connected to 127.0.0.1:$BPORT (MQTT 5)"
wait_for 20 status_has v3 "connected to 127.0.0.1:$BPORT (MQTT 3.1.1)"
ok "both bridges connected"
cloud_ready() {
    mosquitto_pub -p "$BPORT" -t cloud/probe -m probe
    grep -aq '^cloud/probe' "$T/rec.out"
}
wait_for 20 cloud_ready

# ---- uplink --------------------------------------------------------------
for q in 0 1 2; do
    i=0
    while [ $i -lt $N ]; do
        id=$(cli pub up/q$q/k "{\"seq\":$i}") || fail "cairn pub"
        echo "$q $i $id" >>"$T/ids"
        i=$((i + 1))
    done
done
count_on() { grep -c "^$1	" "$T/rec.out" || true; }
uplink_done() {
    for b in v5 v3; do
        for q in 0 1 2; do
            [ "$(count_on "cloud/$b/q$q/k")" -ge $N ] || return 1
        done
    done
}
wait_for 30 uplink_done
for b in v5 v3; do
    for q in 0 1 2; do
        t="cloud/$b/q$q/k"
        [ "$(count_on "$t")" -eq $N ] || fail "$t: $(count_on "$t") messages, want $N"
        got=$(awk -F'	' -v t="$t" '$1 == t { print $2 }' "$T/rec.out" | sort -u)
        [ "$got" = "$q" ] || fail "$t arrived at QoS '$got', want $q"
        seqs=$(awk -F'	' -v t="$t" '$1 == t' "$T/rec.out" |
            sed 's/.*"seq":\([0-9]*\).*/\1/' | tr '\n' ' ')
        [ "$seqs" = "0 1 2 3 4 5 6 7 8 9 " ] || fail "$t order: $seqs"
    done
done
ok "uplink: $N messages per QoS and protocol, once each, in order, at the route's QoS"

while read -r q i id; do
    got=$(awk -F'	' -v t="cloud/v5/q$q/k" -v s="\"seq\":$i}" \
        '$1 == t && index($5, s) { print $3 }' "$T/rec.out")
    [ "$got" = "$id" ] || fail "v5 q$q seq $i: cairn-id '$got', bus id '$id'"
    got=$(awk -F'	' -v t="cloud/v3/q$q/k" -v s="\"seq\":$i}" \
        '$1 == t && index($5, s) { print $3 }' "$T/rec.out")
    [ "$got" = "-" ] || fail "v3 q$q seq $i: unexpected cairn-id '$got'"
done <"$T/ids"
ok "MQTT 5 carries the bus id as cairn-id; 3.1.1 has no properties"

cli pub env/x '{"seq":100}' >/dev/null
cli pub live/x '{"seq":200}' >/dev/null
# rec_has TOPIC TEXT...: a message on TOPIC whose payload holds every TEXT.
rec_has() {
    t=$1
    shift
    awk -F'	' -v t="$t" '$1 == t { print $5 }' "$T/rec.out" >"$T/has"
    for s in "$@"; do
        grep -aF -- "$s" "$T/has" >"$T/has2" || return 1
        mv "$T/has2" "$T/has"
    done
}
wait_for 20 rec_has cloud/v5/env env/x '"seq":100}'
wait_for 20 rec_has cloud/v3/env env/x '"seq":100}'
wait_for 20 grep -aq '^cloud/v5/live/x	1	.*"seq":200' "$T/rec.out"
wait_for 20 grep -aq '^cloud/v3/live/x	1	.*"seq":200' "$T/rec.out"
ok "envelope payload mode and a non-durable route"

# ---- downlink ------------------------------------------------------------
bg "$CAIRN" -s "$ADMIN" sub -v -t 60 'commands/#' >"$T/bus.out"
bus_ready() {
    cli pub commands/probe p >/dev/null
    grep -q '^commands/probe' "$T/bus.out"
}
wait_for 20 bus_ready
for b in v5 v3; do
    V=5
    [ $b = v3 ] && V=311
    for q in 0 1 2; do
        mosquitto_pub -V $V -p "$BPORT" -q $q -t "down/$b/q$q/a" -m "cmd-$b-$q" ||
            fail "mosquitto_pub"
    done
done
ID=$(cli pub id/source x)
for n in 1 2; do
    mosquitto_pub -V 5 -p "$BPORT" -q 1 -t down/v5/q1/b -m dup-cmd \
        -D publish user-property cairn-id "$ID"
done
wait_for 20 metric_ge mqtt_downlink_duplicates_total v5 1
for b in v5 v3; do
    for q in 0 1 2; do
        wait_for 20 grep -q "^commands/$b/q$q/a cmd-$b-$q\$" "$T/bus.out"
        [ "$(grep -c "^commands/$b/q$q/a " "$T/bus.out")" -eq 1 ] ||
            fail "commands/$b/q$q/a delivered more than once"
    done
done
[ "$(grep -c '^commands/v5/q1/b dup-cmd$' "$T/bus.out")" -eq 1 ] ||
    fail "duplicate command: $(grep -c dup-cmd "$T/bus.out") deliveries"
[ "$(metric mqtt_downlink_duplicates_total v5)" = 1 ] || fail "duplicates metric"
ok "downlink: each QoS and protocol once on its bus topic; a redelivery dropped"

# ---- request/response ----------------------------------------------------
mosquitto_pub -V 5 -p "$BPORT" -q 1 -t req/v5/x -m hi \
    -D publish response-topic resp/v5/answer -D publish correlation-data abc
wait_for 20 grep -aq '^resp/v5/answer	1	-	616263	{"count":' "$T/rec.out"
mosquitto_pub -V 311 -p "$BPORT" -q 1 -t req/v3/y -m hi
wait_for 20 grep -aq '^resp/v3/y	1	-	-	{"count":' "$T/rec.out"
reply=$(mosquitto_rr -V 5 -p "$BPORT" -t req/v5/rr -e resp/rr -m hi -W 10) ||
    fail "mosquitto_rr got no reply"
case $reply in *'"count":'*) ;; *) fail "mosquitto_rr reply: $reply" ;; esac
wait_for 10 metric_ge mqtt_requests_total v5 2
ok "request/response: Response Topic + Correlation Data (5), reply_topic (3.1.1)"

# ---- status --------------------------------------------------------------
grep -aq '^cairn/rt-test/v5/status	1	-	-	online$' "$T/rec.out" || fail "no birth (v5)"
grep -aq '^cairn/rt-test/v3/status	1	-	-	online$' "$T/rec.out" || fail "no birth (v3)"
stop
wait_for 10 grep -aq '^cairn/rt-test/v5/status	1	-	-	offline$' "$T/rec.out"
wait_for 10 grep -aq '^cairn/rt-test/v3/status	1	-	-	offline$' "$T/rec.out"
retained=$(mosquitto_sub -p "$BPORT" -t 'cairn/rt-test/+/status' -C 2 -W 5 | sort | tr '\n' ' ')
[ "$retained" = "offline offline " ] || fail "retained status: $retained"
ok "birth online, offline at a clean stop, retained"
