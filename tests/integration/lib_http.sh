# lib_http.sh - shared by the HTTP gateway tests, sourced after
# tests/runtime/lib.sh: the gateway's address (it listens on port 0 and
# names the port in its status), curl wrappers, and HS256 JWTs made with
# openssl, independently of the gateway's own code.
command -v curl >/dev/null || fail "curl not installed (sh tests/install-deps.sh)"
command -v openssl >/dev/null || fail "openssl not installed"

# gw_url NAME: http://127.0.0.1:PORT of gateway instance NAME.
gw_url() {
    cli status | sed -n "s/^  $1: running, listening on \(http:[^ ,]*\).*/\1/p"
}

# wait_gw NAME: waits until the gateway listens; sets U.
wait_gw() {
    wait_for 20 sh -c "$CAIRN -s '$ADMIN' status | grep -q '^  $1: running, listening on http'"
    U=$(gw_url "$1")
    [ -n "$U" ] || fail "no address for $1"
}

# req ARGS...: curl; prints the body, then "HTTP <code>" on its own line.
req() {
    curl -sS --max-time 20 -w '\nHTTP %{http_code}\n' "$@"
}

# expect CODE ARGS...: req must answer CODE; leaves the body in $T/body.
expect() {
    code=$1
    shift
    req "$@" >"$T/resp" || fail "curl $*"
    got=$(sed -n 's/^HTTP \([0-9]*\)$/\1/p' "$T/resp")
    sed '$d' "$T/resp" >"$T/body"
    [ "$got" = "$code" ] || fail "$*: HTTP $got, want $code: $(cat "$T/body")"
}

# body_has TEXT: the last body contains TEXT (fixed string).
body_has() {
    grep -qF -- "$1" "$T/body" || fail "body lacks '$1': $(cat "$T/body")"
}

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# jwt SECRET CLAIMS_JSON: an HS256 token.
jwt() {
    h=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
    p=$(printf '%s' "$2" | b64url)
    s=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -hmac "$1" -binary | b64url)
    printf '%s.%s.%s' "$h" "$p" "$s"
}

sha256hex() { printf '%s' "$1" | openssl dgst -sha256 -r | cut -d' ' -f1; }
