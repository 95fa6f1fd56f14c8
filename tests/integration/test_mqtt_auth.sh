# Bad credentials: the broker checks a password file.  Two bridges (MQTT
# 5 with password, MQTT 3.1.1 with password_file) present a password the
# broker does not know: each is refused with the broker's reason in its
# status and log, and retries with backoff (a handful of attempts in three
# seconds, not hundreds, not none).  Messages published meanwhile wait in
# the outbox.  Once the broker accepts the password (password file
# changed, SIGHUP), both connect and deliver what waited.
. "$SRC_DIR/tests/runtime/lib.sh"
. "$SRC_DIR/tests/integration/lib_mqtt.sh"
MPASSWD=$(command -v mosquitto_passwd || echo /usr/bin/mosquitto_passwd)

"$MPASSWD" -c -b "$T/passwd" cloud right-secret || fail "mosquitto_passwd"
"$MPASSWD" -b "$T/passwd" gw old-secret
printf 'allow_anonymous false\npassword_file %s\n' "$T/passwd" >"$T/broker.extra"
broker_start
printf 'new-secret\n' >"$T/gw.pass"
config "$T/c.yaml" <<EOF2
plugins:
  - name: v5
    path: mqtt-bridge.so
    config:
      port: $BPORT
      username: gw
      password: new-secret
      reconnect_initial: 200ms
      reconnect_max: 1s
      uplink: [{filter: "auth/#", topic: "cloud/v5/{2}"}]
  - name: v3
    path: mqtt-bridge.so
    config:
      port: $BPORT
      protocol: "3.1.1"
      username: gw
      password_file: $T/gw.pass
      reconnect_initial: 200ms
      reconnect_max: 1s
      uplink: [{filter: "auth/#", topic: "cloud/v3/{2}"}]
EOF2

bg mosquitto_sub -p "$BPORT" -u cloud -P right-secret -c -i auth-sub -q 1 \
    -t 'cloud/#' -v >"$T/sub.out"
start "$T/c.yaml"
wait_for 20 metric_ge mqtt_connect_errors_total v5 3
wait_for 20 metric_ge mqtt_connect_errors_total v3 3
status_has v5 "disconnected: connection refused: " || fail "v5 status: $(status v5)"
status_has v3 "disconnected: connection refused: " || fail "v3 status: $(status v3)"
grep -q "v5: cannot connect to 127.0.0.1:$BPORT: connection refused: " "$T/cairnd.log" ||
    fail "no clear log line"
ok "refused: v5 '$(status v5)', v3 '$(status v3)'"

cli pub auth/one '{"seq":1}' >/dev/null
e0=$(metric mqtt_connect_errors_total v5)
sleep 3
e1=$(metric mqtt_connect_errors_total v5)
n=$((e1 - e0))
[ $n -ge 2 ] && [ $n -le 10 ] || fail "$n attempts in 3 s with delays of 0.5-1 s"
[ "$(metric mqtt_connected v5)" = 0 ] || fail "connected with a bad password"
[ "$(depth v5)" = 1 ] && [ "$(depth v3)" = 1 ] || fail "the message is not waiting"
ok "retried with backoff: $n attempts in 3 s; the message waits in both outboxes"

"$MPASSWD" -b "$T/passwd" gw new-secret
kill -HUP "$BPID"
wait_for 20 status_has v5 "connected to"
wait_for 20 status_has v3 "connected to"
wait_for 20 grep -q '^cloud/v5/one {"seq":1}$' "$T/sub.out"
wait_for 20 grep -q '^cloud/v3/one {"seq":1}$' "$T/sub.out"
wait_for 10 depth_is v5 0
wait_for 10 depth_is v3 0
ok "password accepted after the broker's change: what waited is delivered"
stop
