# kill -9 during the downlink: the cloud publishes COUNT commands (QoS 1,
# each with its own cairn-id) that the mqtt-bridge maps to a bus topic
# with a durable route to an idempotent counter; cairnd is killed with
# SIGKILL KILLS times while they stream in, and restarted.  Then the cloud
# sends every command again with the same id (as a cloud does that
# retries what it is not sure of), and one last command.  The counter's
# durable tally must hold every command exactly once.
#
# Why twice: libmosquitto 2.0 acknowledges a QoS 1 message before the
# bridge sees it, so a command the kill caught in the bridge is gone for
# the broker; only the cloud's retry brings it back.  That retry must be
# processed: the bridge may only have recorded a command's id as seen if
# the command itself was committed with it (host->publish_once).  Had the
# id been committed first and the message after, a kill between the two
# leaves an id "seen" whose message is gone, the retry is dropped as a
# duplicate and the tally stays short.
. "$SRC_DIR/tests/runtime/lib.sh"
. "$SRC_DIR/tests/integration/lib_mqtt.sh"
COUNT=${DOWNCRASH_COUNT:-5000}
KILLS=${DOWNCRASH_KILLS:-6}

broker_start
config "$T/c.yaml" <<EOF
store:
  sync: normal           # survives kill -9 of cairnd (not power loss)
routes:
  - filter: "cmd/#"
    to: tally
plugins:
  - name: cloud
    path: mqtt-bridge.so
    config:
      port: $BPORT
      keepalive: 5s
      reconnect_initial: 50ms
      reconnect_max: 200ms
      downlink:
        - {filter: "cloud/cmd", topic: "cmd/x", qos: 1}
        - {filter: "cloud/end", topic: "cmd/end", qos: 1}
  - name: tally          # durable: cmd/#; on the bus alone: cmd/end
    path: counter.so
    config: {filter: "cmd/end", durable: true}
EOF
sed -i 's/log_level: debug/log_level: info/' "$T/c.yaml"

# The bridge's persistent session (and its subscription) exists before
# the stream; the commands wait at the broker while cairnd is down, so
# the bridge is busy with them from its first moment to the last kill.
start "$T/c.yaml"
wait_for 30 status_has cloud "connected to"
stop
"$MQTT_REC" pub -p "$BPORT" -t cloud/cmd -n "$COUNT" -i cloud-1 -T 50 ||
    fail "the cloud could not publish $COUNT commands"
start "$T/c.yaml"
k=0
seen=0
while [ $k -lt "$KILLS" ]; do
    wait_for 30 metric_ge mqtt_downlink_received_total cloud 1
    ms=$(( ($(od -An -N2 -tu2 /dev/urandom) % 50) + 5 ))
    sleep "$(printf '0.%03d' "$ms")"
    got=$(metric mqtt_downlink_received_total cloud | cut -d. -f1)
    kill -KILL "$DPID"
    wait "$DPID" 2>/dev/null || true
    DPID=""
    k=$((k + 1))
    seen=$((seen + got))
    echo "kill $k: ${ms}ms after the first command came in, $got received" >>"$T/kills.log"
    [ "$seen" -lt "$COUNT" ] ||
        fail "the backlog ran out before kill $k: raise DOWNCRASH_COUNT"
    mv "$T/cairnd.log" "$T/cairnd-$k.log"
    # The broker sleeps while cairnd restarts, so the stream resumes only
    # once the admin answers, however slow the start.
    kill -STOP "$BPID"
    start "$T/c.yaml"
    kill -CONT "$BPID"
done
ok "cairnd killed with SIGKILL $k times during the downlink ($(tr '\n' ';' <"$T/kills.log"))"

# The cloud's retry of every command, with the same ids, then a last one
# on another topic: once the bus has that one, every command before it
# is committed (one network thread, in order), and once the tally's
# outbox is empty, counted.
"$MQTT_REC" pub -p "$BPORT" -t cloud/cmd -n "$COUNT" -i cloud-2 -T 50 ||
    fail "the cloud could not publish the retries"
"$MQTT_REC" pub -p "$BPORT" -t cloud/end -n 1 -s $((COUNT + 1)) -i cloud-3 \
    -T 20 || fail "the cloud could not publish the last command"
want=$((COUNT + 1))
tally() { cli call tally.count; }
tally_done() {
    r=$(tally) && [ "$(json_field "$r" count)" -ge 1 ] && depth_is tally 0
}
wait_for 40 tally_done
r=$(tally)
[ "$(json_field "$r" durable)" -eq "$want" ] ||
    fail "counted $(json_field "$r" durable) commands, sent $want: $r"
sum=$(json_field "$r" durable_seq_sum)
[ "$sum" -eq $((want * (want + 1) / 2)) ] ||
    fail "seq sum $sum, want $((want * (want + 1) / 2)): a command counted twice or missing"
ok "every one of $want commands counted exactly once" \
    "($(metric mqtt_downlink_duplicates_total cloud) retries dropped as duplicates since the last start)"
stop
