# Wall-clock jumps under a running cairnd: with libfaketime the wall
# clock of cairnd (only: its monotonic clock stays true) moves by +1h and
# then -1h while the store holds records with a TTL.  Records must not
# expire early (+1h must not age a 10-minute TTL), and must not stall
# either (-1h must not push a 1-second TTL an hour away): the store keeps
# its time monotonic within a run.
. "$SRC_DIR/tests/runtime/lib.sh"
FT_LIB=$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -1)
[ -n "$FT_LIB" ] || fail "libfaketime is missing: run tests/install-deps.sh"

# cairnd under libfaketime, its wall clock read from $T/clock on every call.
echo "+0" >"$T/clock"
REAL_CAIRND=$CAIRND
CAIRND=$T/cairnd-faketime
cat >"$CAIRND" <<EOF2
#!/bin/sh
export LD_PRELOAD="$FT_LIB" FAKETIME_TIMESTAMP_FILE="$T/clock"
export FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1
export ASAN_OPTIONS="\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}verify_asan_link_order=0"
exec "$REAL_CAIRND" "\$@"
EOF2
chmod +x "$CAIRND"

config "$T/c.yaml" <<EOF2
store:
  sync: full
  destinations:
    - {name: hold, ttl: 10m}
    - {name: short, ttl: 1s}
routes:
  - {filter: "hold/#", to: hold}
  - {filter: "short/#", to: short}
plugins:
  - {name: hold, path: counter.so, config: {filter: ""}}
  - {name: short, path: counter.so, config: {filter: ""}}
EOF2
sed -i 's/log_level: debug/log_level: warn/' "$T/c.yaml"

# outbox_metric NAME DEST
outbox_metric() {
    cli metrics | sed -n "s/^cairn_outbox_$1{dest=\"$2\"} //p"
}
expired_is() { [ "$(outbox_metric expired_total "$1")" = "$2" ]; }

start "$T/c.yaml"
seq 1 10 | cli pub -l hold/x >/dev/null || fail "pub hold/x"
cli status | grep -q . || fail "status"

# +1h: the short records expire after their real second, the 10-minute
# ones stay.  The short ones expiring shows the TTL sweep ran after the jump.
echo "+3600" >"$T/clock"
seq 1 5 | cli pub -l short/x >/dev/null || fail "pub short/x"
wait_for 20 expired_is short 5
expired_is hold 0 || fail "+1h: $(outbox_metric expired_total hold) records with a 10-minute TTL expired"
[ "$(outbox_metric depth hold)" = 10 ] || fail "+1h: hold depth $(outbox_metric depth hold), want 10"
ok "wall clock +1h: 10-minute TTL kept all 10, 1-second TTL expired 5"

# -1h (from the start): new 1-second records still expire about a second
# later, not an hour later.
echo "-3600" >"$T/clock"
seq 1 5 | cli pub -l short/y >/dev/null || fail "pub short/y"
wait_for 20 expired_is short 10
expired_is hold 0 || fail "-1h: records with a 10-minute TTL expired"
[ "$(outbox_metric depth hold)" = 10 ] || fail "-1h: hold depth $(outbox_metric depth hold), want 10"
ok "wall clock -1h: 1-second TTL still expired on time, 10-minute TTL kept all"
stop
