# The http-gateway's WebSocket stream with a real client (ws_client, RFC
# 6455 over a plain socket): refused without a token (401) or without a
# filter (400); with both, the handshake's accept key is the RFC's answer
# for its sample key, and every bus message matching the filter arrives
# as one JSON text frame, in order, converted by kind (CBOR as JSON, JSON
# as it is, UTF-8 as text, other bytes as base64), and nothing else.  A
# ping is answered; after the client closes, the gateway frees it.
. "$SRC_DIR/tests/runtime/lib.sh"
. "$SRC_DIR/tests/integration/lib_http.sh"
: "${WS_CLIENT:?}"

config "$T/c.yaml" <<EOF2
plugins:
  - name: gw
    path: http-gateway.so
    config:
      listen: "http://127.0.0.1:0"
      ws_auth: token
      tokens: [{name: viewer, sha256: "$(sha256hex view-token)"}]
EOF2
start "$T/c.yaml"
wait_gw gw
PORT=${U##*:}

rc=0
"$WS_CLIENT" "$PORT" '/ws?filter=orders/%23' 1 >"$T/noauth" || rc=$?
[ $rc -eq 3 ] && grep -q '^status 401$' "$T/noauth" || fail "no token: rc $rc $(cat "$T/noauth")"
rc=0
"$WS_CLIENT" "$PORT" '/ws' 1 view-token >"$T/nofilter" || rc=$?
[ $rc -eq 3 ] && grep -q '^status 400$' "$T/nofilter" || fail "no filter: rc $rc $(cat "$T/nofilter")"
grep -q '"error":"filter=F' "$T/nofilter" || fail "no JSON error: $(cat "$T/nofilter")"
ok "upgrade refused without a token (401) and without a filter (400)"

"$WS_CLIENT" "$PORT" '/ws?filter=orders/%23' 4 view-token >"$T/ws.out" 2>"$T/ws.err" &
WPID=$!
wait_for 20 grep -q '^connected$' "$T/ws.out"
grep -q '^accept s3pPLMBiTxaQ9kYGzzhZRbK+xOo=$' "$T/ws.out" ||
    fail "wrong Sec-WebSocket-Accept: $(cat "$T/ws.out")"

cli pub sensors/1 'not for this client' >/dev/null
cli pub orders/1 '{"qty":1,"sku":"a-1"}' >/dev/null
cli pub orders/eu/2 'hello world' >/dev/null
cli pub orders/3 "$(printf '\242aa\001ab\202\001\002')" >/dev/null
cli pub orders/4 "$(printf '\377\376')" >/dev/null
rc=0
wait "$WPID" || rc=$?
[ $rc -eq 0 ] || fail "ws_client exited $rc: $(cat "$T/ws.err")"

sed -n '/^connected$/,$p' "$T/ws.out" | sed '1d' >"$T/frames"
n=$(grep -c '^{' "$T/frames")
[ "$n" -eq 4 ] || fail "$n frames, want 4: $(cat "$T/frames")"
sed -n 1p "$T/frames" | grep -q '^{"topic":"orders/1","id":"[0-9a-f-]\{36\}","ts":[0-9]*,"encoding":"json","payload":{"qty":1,"sku":"a-1"}}$' ||
    fail "frame 1: $(sed -n 1p "$T/frames")"
sed -n 2p "$T/frames" | grep -q '"topic":"orders/eu/2".*"encoding":"text","payload":"hello world"}$' ||
    fail "frame 2: $(sed -n 2p "$T/frames")"
sed -n 3p "$T/frames" | grep -q '"topic":"orders/3".*"encoding":"cbor","payload":{"a":1,"b":\[1,2\]}}$' ||
    fail "frame 3: $(sed -n 3p "$T/frames")"
sed -n 4p "$T/frames" | grep -q '"topic":"orders/4".*"encoding":"base64","payload":"//4="}$' ||
    fail "frame 4: $(sed -n 4p "$T/frames")"
grep -q 'sensors' "$T/frames" && fail "a message outside the filter was sent"
grep -q '^pong hi$' "$T/ws.out" || fail "no pong: $(cat "$T/ws.out")"
ok "matching messages stream as JSON frames (json, text, cbor, base64); ping answered"

clients() { curl -s "$U/metrics" | sed -n 's/^cairn_ws_clients{plugin="gw"} //p'; }
wait_for 10 sh -c "[ \"\$(curl -s '$U/metrics' | sed -n 's/^cairn_ws_clients{plugin=\"gw\"} //p')\" = 0 ]"
sent=$(curl -s "$U/metrics" | sed -n 's/^cairn_ws_sent_total{plugin="gw"} //p')
[ "$sent" -ge 4 ] || fail "ws_sent_total $sent"
ok "the closed client is freed (ws_clients $(clients)), $sent frames counted"
stop
