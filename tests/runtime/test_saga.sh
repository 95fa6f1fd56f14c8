# The order saga (examples/order-saga) end to end: an order that
# completes (stock taken, payment charged, item dispensed, "completed"
# event); a declined card (stock released, nothing charged or dispensed,
# "failed" then "compensated"); a jammed dispenser (refund, then release:
# the compensations in reverse order); an order id given twice takes
# effect once; bad requests get clear errors; a CBOR request (what the
# HTTP gateway sends) gets a CBOR reply; the state survives a restart.
. "$(dirname "$0")/lib.sh"

"$CAIRND" --check -c "$SRC_DIR/examples/order-saga/saga.yaml" \
    -P "$PLUGIN_DIR" >/dev/null || fail "examples/order-saga/saga.yaml is invalid"
ok "saga.yaml is a valid config"

config "$T/c.yaml" <<EOF2
store:
  sync: normal
plugins:
  - name: stock
    path: saga-stock.so
    config:
      items: [cola, water, chips]
      initial: 10
  - name: payment
    path: saga-payment.so
    config:
      decline_card: declined
  - name: dispenser
    path: saga-dispenser.so
    config:
      jam_item: chips
  - name: orders
    path: saga-orders.so
    config:
      price: 150
EOF2
start "$T/c.yaml"

# Events: a subscriber that is known to be listening (a probe came back).
cli sub -v -t 60 'orders/#' >"$T/events" 2>/dev/null &
SUB=$!
trap 'kill $SUB 2>/dev/null || true; cleanup' EXIT
probe() { cli pub orders/probe/x 1 && grep -q 'orders/probe/x' "$T/events"; }
wait_for 20 probe

# create ARGS...: the order id of an accepted order.
create() {
    r=$(cli call orders.create "$*") || fail "orders.create $*"
    id=$(printf '%s' "$r" | sed -n 's/.*"order":"\([^"]*\)".*"state":"accepted".*/\1/p')
    [ -n "$id" ] || fail "orders.create replied '$r'"
    echo "$id"
}
# field JSON KEY: the string value of "KEY".
field() { printf '%s' "$1" | sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p"; }
settled() {
    r=$(cli call orders.report) &&
        [ "$(json_field "$r" pending)" -eq 0 ] &&
        [ "$(json_field "$r" accepted)" -eq "$1" ]
}
# events ID: the order's event names, in order of arrival.
events() { sed -n "s#^orders/$1/\([a-z]*\) .*#\1#p" "$T/events" | tr '\n' ' '; }
expect() { # expect ORDER SERVICE WANT
    g=$(cli call "$2.get" "$1") || fail "$2.get $1"
    [ "$g" = "$3" ] || fail "$2.get of $1: '$g', want '$3'"
}

good=$(create "item=cola qty=2 card=4242")
declined=$(create "item=water qty=1 card=declined")
jammed=$(create "item=chips qty=3 card=4242")
wait_for 30 settled 3

g=$(cli call orders.get "$good")
[ "$(field "$g" state)" = completed ] || fail "good order: $g"
expect "$good" stock "reserved cola 2"
expect "$good" payment "charged 300"
expect "$good" dispenser "dispensed cola 2"
ok "an order completes: stock taken, payment charged, item dispensed"

g=$(cli call orders.get "$declined")
[ "$(field "$g" state)" = compensated ] && [ "$(field "$g" reason)" = declined ] ||
    fail "declined order: $g"
expect "$declined" stock "released water 1"
expect "$declined" payment "declined"
expect "$declined" dispenser "none"
ok "a declined card: stock released, nothing charged, nothing dispensed"

g=$(cli call orders.get "$jammed")
[ "$(field "$g" state)" = compensated ] && [ "$(field "$g" reason)" = jammed ] ||
    fail "jammed order: $g"
expect "$jammed" stock "released chips 3"
expect "$jammed" payment "refunded 450"
expect "$jammed" dispenser "jammed"
ok "a jammed dispenser: payment refunded and stock released"

s=$(cli call stock.report)
[ "$s" = '{"levels":{"cola":8,"water":10,"chips":10},"reserved":3,"released":2}' ] ||
    fail "stock.report: $s"
p=$(cli call payment.report)
[ "$p" = '{"charged":750,"refunded":450,"charges":2,"refunds":1}' ] ||
    fail "payment.report: $p"
d=$(cli call dispenser.report)
[ "$d" = '{"units":2,"dispensed":1}' ] || fail "dispenser.report: $d"
ok "totals agree: stock, payments and dispensed units"

settled_events() {
    [ "$(events "$good")" = "started reserved paid dispensed completed " ] &&
        [ "$(events "$declined")" = "started reserved failed released compensated " ] &&
        [ "$(events "$jammed")" = "started reserved paid failed refunded released compensated " ]
}
wait_for 10 settled_events
grep -q "^orders/$jammed/failed .*\"reason\":\"jammed\"" "$T/events" ||
    fail "no failed event with its reason"
ok "events in order; compensations in reverse (refunded before released)"

# An order id given by the client makes create idempotent.
a=$(create "order=vend-7 item=cola qty=1 card=1")
b=$(create "order=vend-7 item=cola qty=1 card=1")
[ "$a" = vend-7 ] && [ "$b" = vend-7 ] || fail "given order id: $a $b"
wait_for 30 settled 4
expect vend-7 stock "reserved cola 1"
s=$(cli call stock.report)
printf '%s' "$s" | grep -q '"cola":7' || fail "vend-7 twice: $s"
ok "the same order id twice is one order"

# A CBOR request, as the HTTP gateway sends it: {"item":"cola","qty":1,
# "card":"4242","params":{},"query":{}}; the reply is a CBOR map.
# shellcheck disable=SC2059
body=$(printf '\245ditemdcolacqty\001dcardd4242fparams\240equery\240')
cli call orders.create "$body" >"$T/cbor" || fail "CBOR create"
# a2 65 "order" 78 24 <36-char id> 65 "state" 68 "accepted"
[ "$(head -c 8 "$T/cbor" | od -An -tx1 | tr -d ' \n')" = a2656f7264657278 ] ||
    fail "CBOR reply: $(od -An -tx1 "$T/cbor" | head -2)"
grep -q 'estatehaccepted' "$T/cbor" || fail "CBOR reply lacks state accepted"
wait_for 30 settled 5
ok "a CBOR request gets a CBOR reply {order, state: accepted}"

bad() { # bad MESSAGE PAYLOAD
    rc=0
    cli call orders.create "$2" 2>"$T/err" >/dev/null || rc=$?
    [ "$rc" -eq 1 ] || fail "bad request '$2': exit $rc"
    grep -q "$1" "$T/err" || fail "bad request '$2': $(cat "$T/err")"
}
bad "missing card" "item=cola qty=1"
bad "qty must be 1..1000" "item=cola qty=0 card=1"
bad "qty must be 1..1000" "item=cola qty=1001 card=1"
bad "item and card" "item=co/la qty=1 card=1"
bad "keys must be text" "$(printf '\241\001\001')"
bad "malformed CBOR" "$(printf '\242ditem')"
bad "too many keys" "$(printf '\270\021')"
rc=0
cli call orders.get nosuch 2>"$T/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "no such order" "$T/err" || fail "orders.get nosuch"
r=$(cli call orders.report)
[ "$(json_field "$r" accepted)" -eq 5 ] || fail "bad requests were accepted: $r"
ok "bad requests are refused with a clear message, nothing accepted"

stop
start "$T/c.yaml"
[ "$(cli call stock.report)" = '{"levels":{"cola":6,"water":10,"chips":10},"reserved":5,"released":2}' ] ||
    fail "stock after restart: $(cli call stock.report)"
[ "$(field "$(cli call orders.get "$good")" state)" = completed ] ||
    fail "order state lost over a restart"
ok "the saga's and the participants' state survive a restart"
stop
