# /healthz, /readyz and /metrics of the http-gateway.  /readyz follows a
# real bridge's link: an mqtt-bridge pointed at a mosquitto that is not
# running yet keeps the runtime not ready (503, naming the bridge); once
# the broker runs and the bridge connects it is ready (200); a stopped
# broker makes it not ready again.  /metrics is the runtime's Prometheus
# text, the same as `cairn metrics` (rpc histogram of the echo service).
. "$SRC_DIR/tests/runtime/lib.sh"
. "$SRC_DIR/tests/integration/lib_mqtt.sh"
. "$SRC_DIR/tests/integration/lib_http.sh"

BPORT=$(( 20000 + $$ % 20000 ))
config "$T/c.yaml" <<EOF2
plugins:
  - name: echo
    path: $TP_DIR/echo.so
  - name: up
    path: mqtt-bridge.so
    config:
      port: $BPORT
      reconnect_initial: 100ms
      reconnect_max: 300ms
  - name: gw
    path: http-gateway.so
    config:
      listen: "http://127.0.0.1:0"
      routes:
        - {method: GET, path: "/echo", service: echo}
EOF2
start "$T/c.yaml"
wait_gw gw

expect 200 "$U/healthz"
body_has '{"status":"ok"}'
ok "/healthz answers 200"

wait_for 20 metric_ge mqtt_connect_errors_total up 1
expect 503 "$U/readyz"
body_has '"error":"plugin up: link down"'
ok "/readyz is 503 while the bridge has no broker"

broker_start
wait_for 20 sh -c "curl -sf '$U/readyz' >/dev/null"
expect 200 "$U/readyz"
body_has '{"status":"ready"}'
ok "/readyz is 200 once the bridge is connected"

broker_stop
wait_for 20 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$U/readyz')\" = 503 ]"
ok "/readyz is 503 again when the broker goes away"

expect 200 "$U/echo"
expect 200 "$U/metrics"
body_has '# TYPE cairn_plugin_up gauge'
body_has 'cairn_plugin_up{plugin="gw"} 1'
body_has 'cairn_rpc_latency_seconds_bucket{service="echo"'
cli metrics | grep -q '^cairn_plugin_up{plugin="gw"} 1$' || fail "cli metrics differ"
ok "/metrics is the runtime's Prometheus text"
stop
