# AMQP over TLS: certificates made here with openssl (a CA, a server
# certificate for localhost and 127.0.0.1, a client certificate; and a
# second, unrelated CA).  RabbitMQ gets a TLS listener of its own that
# asks for a client certificate.  Two bridges in one cairnd: the right
# CA connects and carries messages both ways over TLS; a wrong CA is
# refused with the certificate error in its status, keeps retrying, and
# its link shows down in the gateway's /readyz (host->link_state).
. "$SRC_DIR/tests/runtime/lib.sh"
. "$SRC_DIR/tests/integration/lib_amqp.sh"
command -v curl >/dev/null || fail "curl not installed (sh tests/install-deps.sh)"

pki_make

cat >"$T/broker.extra" <<EOF2
listeners.ssl.default = 127.0.0.1:@PORT3@
ssl_options.cacertfile = $P/ca.crt
ssl_options.certfile = $P/server.crt
ssl_options.keyfile = $P/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
EOF2
broker_start
TPORT=$((BPORT + 3))
ok "rabbitmq up, TLS on 127.0.0.1:$TPORT"
bridge() { # NAME CA
    cat <<EOF2
  - name: $1
    path: amqp-bridge.so
    config:
      host: localhost
      port: $TPORT
      tls: true
      ca_file: $P/$2.crt
      cert_file: $P/client.crt
      key_file: $P/client.key
      reconnect_initial: 100ms
      reconnect_max: 300ms
      exchanges:
        - {name: up, type: topic}
      queues:
        - {name: tlsup}
        - {name: tlsdown}
      bindings:
        - {queue: tlsup, exchange: up, routing_key: "t.#"}
      uplink:
        - {filter: "t/$1/#", exchange: up, routing_key: "t.{2}"}
      downlink:
        - {queue: tlsdown, topic: "down/{1}"}
EOF2
}
{
    echo "plugins:"
    bridge good ca
    cat <<EOF2
  - name: gw
    path: http-gateway.so
    config:
      listen: "http://127.0.0.1:0"
  - name: tally
    path: counter.so
    config: {filter: "down/#"}
EOF2
    bridge bad other
} | config "$T/c.yaml"
sed -i 's/log_level: debug/log_level: info/' "$T/c.yaml"
start "$T/c.yaml"
wait_for 30 status_has good "connected to localhost:$TPORT"
ok "the right CA connects over TLS ($(status good))"

# Both ways over TLS: up through the exchange, down from the queue.
"$PRODUCER" "$ADMIN" t/good/x 20 2 "$T/producer.log" || fail "producer"
"$AMQP_REC" get -p "$BPORT" -q tlsup -o "$T/up.out" -n 20 -T 30 ||
    fail "not every uplink message arrived"
"$AMQP_REC" check "$T/up.out" 2 "$T/producer.log" >"$T/check.log" ||
    fail "check: $(cat "$T/check.log")"
"$AMQP_REC" pub -p "$BPORT" -k tlsdown -n 5 -s 1 || fail "publishing downlink"
down5() { r=$(cli call tally.count) && [ "$(json_field "$r" count)" -ge 5 ]; }
wait_for 30 down5
ok "20 messages up and 5 down over TLS ($(tail -1 "$T/check.log"))"

# The wrong CA: refused, and says why; the link is down for /readyz.
wait_for 30 metric_ge amqp_connect_errors_total bad 2
st=$(status bad)
echo "$st" | grep -Eqi 'certif|verif|ssl|tls' ||
    fail "the wrong CA's status does not say why: $st"
echo "$st" | grep -q "connected to" && fail "the wrong CA connected: $st"
ok "the wrong CA is refused, and keeps retrying ($st)"
U=$(cli status | sed -n 's/^  gw: running, listening on \(http:[^ ,]*\).*/\1/p')
[ -n "$U" ] || fail "no address for the gateway"
code=$(curl -s -o "$T/ready" -w '%{http_code}' --max-time 10 "$U/readyz")
[ "$code" = 503 ] && grep -q "plugin bad: link down" "$T/ready" ||
    fail "/readyz: HTTP $code $(cat "$T/ready")"
ok "/readyz is 503 naming the AMQP link that is down, not the one up"
stop
