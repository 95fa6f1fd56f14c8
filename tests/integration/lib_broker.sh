# lib_broker.sh - shared by the broker integration tests' libraries
# (lib_mqtt.sh, lib_amqp.sh), which source it: background commands killed
# at exit, readers for a running cairnd's metrics, plugin status, outbox
# depth and for recordings, and the TLS tests' certificates (openssl).
BG_PIDS=""

# bg COMMAND...: runs COMMAND in the background, killed at exit; $! is it.
bg() {
    "$@" &
    BG_PIDS="$BG_PIDS $!"
}

# bg_stop: TERM to every bg command (`cairn sub` then removes its socket
# file), a second for each to leave, then KILL.
bg_stop() {
    for p in $BG_PIDS; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in $BG_PIDS; do
        n=0
        while kill -0 "$p" 2>/dev/null && [ $n -lt 20 ]; do
            sleep 0.05
            n=$((n + 1))
        done
        kill -KILL "$p" 2>/dev/null || true
    done
}

# metric NAME INSTANCE: a plugin metric's value (0 when absent).
metric() {
    v=$(cli metrics 2>/dev/null | sed -n "s/^cairn_$1{plugin=\"$2\"} //p")
    echo "${v:-0}"
}

# metric_ge NAME INSTANCE MIN: true when the metric is at least MIN.
metric_ge() {
    [ "$(metric "$1" "$2" | cut -d. -f1)" -ge "$3" ]
}

# status INSTANCE: the plugin's status line from `cairn plugins`.
status() {
    cli plugins 2>/dev/null | awk -v n="$1" '$1 == n' |
        sed 's/^.*[0-9]  *[0-9]  *[0-9]  *//'
}

status_has() {
    status "$1" | grep -q -- "$2"
}

# depth DEST: messages waiting in DEST's outbox.
depth() {
    cli outbox 2>/dev/null | awk -v d="$1" '$1 == d { print $2 }'
}

depth_is() {
    [ "$(depth "$1")" = "$2" ]
}

depth_over() {
    [ "$(depth "$1")" -gt "$2" ]
}

# lines FILE: its line count (0 if missing).
lines() {
    if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi
}

lines_ge() {
    [ "$(lines "$1")" -ge "$2" ]
}

# cert NAME SUBJECT [CA] [SAN]: an EC key and certificate in $P, self-signed
# without CA, else signed by CA's (with SAN, or as a leaf without).
cert() {
    if [ -z "${3:-}" ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
            -nodes -keyout "$P/$1.key" -out "$P/$1.crt" -days 2 -subj "$2" \
            2>>"$T/openssl.log"
        return
    fi
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$P/$1.key" -out "$P/$1.csr" -subj "$2" 2>>"$T/openssl.log"
    printf '%s\n' "${4:-basicConstraints=CA:FALSE}" >"$P/$1.ext"
    openssl x509 -req -in "$P/$1.csr" -CA "$P/$3.crt" -CAkey "$P/$3.key" \
        -CAcreateserial -out "$P/$1.crt" -days 2 -extfile "$P/$1.ext" \
        2>>"$T/openssl.log"
}

# pki_make: P=$T/pki with a CA (ca), a second, unrelated CA (other), a
# server certificate for localhost and 127.0.0.1 (server) and a client
# certificate (client), both signed by ca.
pki_make() {
    command -v openssl >/dev/null || fail "openssl not installed"
    P="$T/pki"
    mkdir -p "$P"
    cert ca "/CN=cairn test CA" || fail "openssl: CA"
    cert other "/CN=some other CA" || fail "openssl: second CA"
    cert server "/CN=localhost" ca \
        "subjectAltName=DNS:localhost,IP:127.0.0.1" ||
        fail "openssl: server certificate"
    cert client "/CN=rt-test" ca || fail "openssl: client certificate"
    ok "certificates made"
}
