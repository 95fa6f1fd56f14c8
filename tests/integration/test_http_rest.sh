# REST through the http-gateway over real HTTP (curl): routing with path
# parameters and the query to a real service (the echo test plugin sends
# the request map back, so the reply shows what the service received),
# 404/405, malformed JSON 400, oversize 413, a missing service 503, a
# deadline 504, bearer tokens (none, wrong, right, not allowed) and HS256
# JWTs (good, expired, bad signature), the token bucket's 429 with
# Retry-After, and the OpenAPI document listing the routes.
. "$SRC_DIR/tests/runtime/lib.sh"
. "$SRC_DIR/tests/integration/lib_http.sh"

SECRET=jwt-secret-of-this-test-0123456789
config "$T/c.yaml" <<EOF2
plugins:
  - name: echo
    path: $TP_DIR/echo.so
  - name: slow
    path: counter.so
    config:
      filter: ""
      delay: 2s
  - name: gw
    path: http-gateway.so
    config:
      listen: "http://127.0.0.1:0"
      max_body: 1KiB
      rate: 0.5
      burst: 3
      tokens:
        - {name: alice, sha256: "$(sha256hex alice-token)"}
        - {name: carol, sha256: "$(sha256hex carol-token)"}
      jwt_secret: "$SECRET"
      jwt_leeway: 0s
      routes:
        - {method: GET, path: "/orders/{id}", service: echo, rate_limit: false,
           summary: "one order"}
        - {method: POST, path: "/orders/{id}/items/{item}", service: echo,
           rate_limit: false}
        - {method: PUT, path: "/secure/{x}", service: echo, auth: token,
           allow: [alice], rate_limit: false}
        - {method: GET, path: "/jwt", service: echo, auth: jwt, rate_limit: false}
        - {method: GET, path: "/limited", service: echo, auth: token}
        - {method: GET, path: "/missing", service: nosuch, rate_limit: false}
        - {method: GET, path: "/slow", service: slow.count, timeout: 200ms,
           rate_limit: false}
EOF2
start "$T/c.yaml"
wait_gw gw

expect 200 "$U/orders/42?color=red&size=x%20l"
body_has '"method":"GET","path":"/orders/42","params":{"id":"42"}'
body_has '"query":{"color":"red","size":"x l"},"body":null'
expect 200 -X POST -H 'Content-Type: application/json' \
    -d '{"qty":3,"tags":["a","b"],"price":2.5,"gift":false,"note":null}' \
    "$U/orders/7/items/a%2Fb"
body_has '"params":{"id":"7","item":"a/b"}'
body_has '"body":{"qty":3,"tags":["a","b"],"price":2.5,"gift":false,"note":null}'
ok "path parameters, query and JSON body reach the service as CBOR and come back as JSON"

expect 404 "$U/nothing/here"
body_has '{"error":"no such route"}'
expect 405 -X DELETE "$U/orders/1"
body_has '{"error":"method not allowed"}'
ok "unknown route 404, wrong method 405, both with a JSON error"

expect 400 -X POST -H 'Content-Type: application/json' -d '{"qty":' "$U/orders/7/items/1"
body_has '"error":"bad JSON body: unexpected end of input'
expect 400 -X POST -H 'Content-Type: application/json' -d '{"a":1} x' "$U/orders/7/items/1"
body_has 'trailing characters'
deep=$(printf '%0.s[' $(seq 1 40))
expect 400 -X POST -H 'Content-Type: application/json' -d "$deep" "$U/orders/7/items/1"
body_has 'nested too deep'
head -c 2048 /dev/zero | tr '\0' 'a' | sed 's/^/"/;s/$/"/' >"$T/big.json"
expect 413 -X POST -H 'Content-Type: application/json' --data-binary @"$T/big.json" \
    "$U/orders/7/items/1"
body_has '{"error":"body too large"}'
ok "malformed JSON 400 (truncated, trailing, too deep), oversize body 413"

expect 503 "$U/missing"
body_has '"error":"service nosuch: not found"'
expect 504 "$U/slow"
body_has 'timed out'
ok "no such service 503, a deadline passed 504"

expect 401 -X PUT "$U/secure/1"
body_has 'missing bearer token'
expect 401 -X PUT -H 'Authorization: Bearer wrong-token' "$U/secure/1"
body_has 'invalid token'
expect 403 -X PUT -H 'Authorization: Bearer carol-token' "$U/secure/1"
expect 200 -X PUT -H 'Authorization: Bearer alice-token' "$U/secure/1"
body_has '"subject":"alice"'
ok "token: refused without (401) and with a wrong one (401), not allowed (403), accepted"

now=$(date +%s)
good=$(jwt "$SECRET" "{\"sub\":\"dave\",\"exp\":$((now + 600))}")
old=$(jwt "$SECRET" "{\"sub\":\"dave\",\"exp\":$((now - 60))}")
forged=$(jwt "not-the-secret-0123456789" "{\"sub\":\"dave\",\"exp\":$((now + 600))}")
noexp=$(jwt "$SECRET" '{"sub":"dave"}')
expect 200 -H "Authorization: Bearer $good" "$U/jwt"
body_has '"subject":"dave"'
expect 401 -H "Authorization: Bearer $old" "$U/jwt"
body_has 'token expired'
expect 401 -H "Authorization: Bearer $forged" "$U/jwt"
body_has 'bad token signature'
expect 401 -H "Authorization: Bearer $noexp" "$U/jwt"
expect 401 "$U/jwt"
ok "JWT: valid accepted (subject passed on), expired, forged, without exp refused"

# burst 3 at 0.5/s: three pass, the fourth is refused (refill takes 2 s).
for i in 1 2 3; do
    expect 200 -H 'Authorization: Bearer alice-token' "$U/limited"
done
curl -sS -D "$T/hdr" -o "$T/body" -w '%{http_code}' \
    -H 'Authorization: Bearer alice-token' "$U/limited" >"$T/code"
[ "$(cat "$T/code")" = 429 ] || fail "4th request: $(cat "$T/code"), want 429"
grep -qi '^Retry-After: [12]' "$T/hdr" || fail "no Retry-After: $(cat "$T/hdr")"
body_has '{"error":"rate limit exceeded"}'
expect 200 -H 'Authorization: Bearer carol-token' "$U/limited"
ok "429 with Retry-After once alice's bucket is empty; carol has her own bucket"

expect 200 "$U/openapi.json"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["openapi"].startswith("3."), d["openapi"]
p = d["paths"]
for path, m in [("/orders/{id}", "get"), ("/orders/{id}/items/{item}", "post"),
                ("/secure/{x}", "put"), ("/jwt", "get"), ("/slow", "get"),
                ("/healthz", "get"), ("/metrics", "get")]:
    assert m in p[path], (path, m)
assert p["/orders/{id}"]["get"]["summary"] == "one order"
names = [x["name"] for x in p["/orders/{id}/items/{item}"]["post"]["parameters"]]
assert names == ["id", "item"], names
assert p["/secure/{x}"]["put"]["security"] == [{"bearer": []}]
' "$T/body" || fail "openapi.json: $(head -c 300 "$T/body")"
ok "/openapi.json is valid OpenAPI 3 JSON listing every route"

c4=$(curl -s "$U/metrics" | sed -n 's/^cairn_http_responses_4xx_total{plugin="gw"} //p')
[ -n "$c4" ] && [ "$c4" -ge 10 ] || fail "4xx counter: '$c4'"
ok "the gateway counts its answers ($c4 4xx so far)"
stop
