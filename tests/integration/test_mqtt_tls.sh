# TLS: certificates made here with openssl (a CA, a server certificate
# for localhost and 127.0.0.1, a client certificate; and a second, unrelated
# CA).  The broker asks for a client certificate.  Three bridges in one
# cairnd: the right CA connects and delivers; a wrong CA is refused with
# the certificate error in its status, and keeps retrying; a host name
# that is not in the certificate (127.0.0.2) is refused: host name
# verification is on by default.
. "$SRC_DIR/tests/runtime/lib.sh"
. "$SRC_DIR/tests/integration/lib_mqtt.sh"

pki_make

cat >"$T/broker.extra" <<EOF2
listener @PORT1@ 127.0.0.1
cafile $P/ca.crt
certfile $P/server.crt
keyfile $P/server.key
require_certificate true
listener @PORT1@ 127.0.0.2
cafile $P/ca.crt
certfile $P/server.crt
keyfile $P/server.key
require_certificate true
EOF2
broker_start
TPORT=$((BPORT + 1))
bridge() { # NAME HOST CA
    cat <<EOF2
  - name: $1
    path: mqtt-bridge.so
    config:
      host: $2
      port: $TPORT
      tls: true
      ca_file: $P/$3.crt
      cert_file: $P/client.crt
      key_file: $P/client.key
      reconnect_initial: 100ms
      reconnect_max: 500ms
      uplink:
        - {filter: "tls/#", topic: "secure/$1/{2}", qos: 1}
EOF2
}
{
    printf 'plugins:\n'
    bridge good localhost ca
    bridge wrongca localhost other
    bridge badname 127.0.0.2 ca
} | config "$T/c.yaml"

bg "$MQTT_REC" sub -p "$BPORT" -q 1 -t 'secure/#' -o "$T/rec.out" -i rec-tls -T 120
start "$T/c.yaml"
wait_for 20 status_has good "connected to localhost:$TPORT (MQTT 5)"
cli pub tls/hello '{"seq":1}' >/dev/null
wait_for 20 grep -aq '^secure/good/hello	1	.*"seq":1}$' "$T/rec.out"
ok "right CA: connected over TLS with a client certificate, delivered"

wait_for 20 metric_ge mqtt_connect_errors_total wrongca 3
wait_for 10 status_has wrongca "TLS error: .*certificate verify failed"
[ "$(metric mqtt_connected wrongca)" = 0 ] || fail "wrong CA connected"
ok "wrong CA refused, retried: $(status wrongca)"

wait_for 20 metric_ge mqtt_connect_errors_total badname 3
wait_for 10 status_has badname "TLS error: .*certificate verify failed"
[ "$(metric mqtt_connected badname)" = 0 ] || fail "127.0.0.2 accepted"
ok "host name not in the certificate refused: $(status badname)"

sleep 0.5
[ "$(grep -ac '^secure/wrongca\|^secure/badname' "$T/rec.out")" -eq 0 ] ||
    fail "a refused bridge delivered"
[ "$(depth wrongca)" -ge 1 ] || fail "the refused bridge lost its message"
ok "the refused bridges keep their messages: $(depth wrongca) and $(depth badname) waiting"
stop
