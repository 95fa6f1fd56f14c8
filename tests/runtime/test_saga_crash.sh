# The order saga under kill -9: many orders in flight (a step_delay
# widens the window between a participant's commit and the
# orchestrator's), cairnd killed at random points several times and
# restarted, more orders taken between the crashes.  Once every order
# reached a terminal state, each one must be exactly what its input
# says: completed (stock -qty, charged once, dispensed once) or
# compensated (stock back, refund equal to the charge or nothing
# charged, nothing dispensed), and the participants' totals must agree
# with the orders.  The random crash points are printed, to replay.
. "$(dirname "$0")/lib.sh"

config "$T/c.yaml" <<EOF2
store:
  sync: normal
plugins:
  - name: stock
    path: saga-stock.so
    config:
      items: [cola, water, chips]
      initial: 1000
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
      step_delay: 30ms
EOF2
start "$T/c.yaml"

rnd() { od -An -N2 -tu2 /dev/urandom | tr -d ' '; }
: >"$T/orders"
n=0
# new_orders K: K orders, their id, item, qty and card in $T/orders.
new_orders() {
    k=0
    while [ "$k" -lt "$1" ]; do
        n=$((n + 1))
        k=$((k + 1))
        qty=$((n % 3 + 1))
        case $((n % 6)) in
        0) item=chips card=4242 ;;   # jams: refund, release
        1 | 4) item=water card=declined ;; # declined: release
        *) item=cola card=4242 ;;
        esac
        id="o-$n"
        cli call orders.create "order=$id item=$item qty=$qty card=$card" \
            >/dev/null || fail "orders.create $id"
        echo "$id $item $qty $card" >>"$T/orders"
    done
}

new_orders 12
crash=1
while [ "$crash" -le 6 ]; do
    ms=$(($(rnd) % 400 + 20))
    echo "# crash $crash after ${ms}ms"
    sleep "$(printf '0.%03d' "$ms")"
    kill -KILL "$DPID"
    wait "$DPID" 2>/dev/null || true
    DPID=""
    mv "$T/cairnd.log" "$T/cairnd-$crash.log"
    start "$T/c.yaml"
    new_orders 2
    crash=$((crash + 1))
done
ok "cairnd killed 6 times mid-saga, restarted each time; $n orders taken"

settled() {
    r=$(cli call orders.report) &&
        [ "$(json_field "$r" pending)" -eq 0 ] &&
        [ "$(json_field "$r" accepted)" -eq "$n" ]
}
wait_for 50 settled
ok "every order reached a terminal state"

get() { cli call "$1.get" "$2" || fail "$1.get $2"; }
units=0 charged=0 refunded=0 done=0 cola=0 water=0
while read -r id item qty card; do
    st=$(cli call orders.get "$id" | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p')
    s=$(get stock "$id") p=$(get payment "$id") d=$(get dispenser "$id")
    amount=$((qty * 150))
    if [ "$card" = declined ]; then
        want="compensated|released $item $qty|declined|none"
    elif [ "$item" = chips ]; then
        want="compensated|released $item $qty|refunded $amount|jammed"
        charged=$((charged + amount)) refunded=$((refunded + amount))
    else
        want="completed|reserved $item $qty|charged $amount|dispensed $item $qty"
        charged=$((charged + amount)) units=$((units + qty)) done=$((done + 1))
        eval "$item=\$(($item + qty))"
    fi
    [ "$st|$s|$p|$d" = "$want" ] ||
        fail "order $id ($item x$qty, card $card): got '$st|$s|$p|$d', want '$want'"
done <"$T/orders"
ok "each order is completed or fully compensated, as its input says"

s=$(cli call stock.report)
want="{\"levels\":{\"cola\":$((1000 - cola)),\"water\":$((1000 - water)),\"chips\":1000},\"reserved\":$n,\"released\":$((n - done))}"
[ "$s" = "$want" ] || fail "stock.report: $s, want $want"
p=$(cli call payment.report)
charges=$((done + n / 6))
want="{\"charged\":$charged,\"refunded\":$refunded,\"charges\":$charges,\"refunds\":$((n / 6))}"
[ "$p" = "$want" ] || fail "payment.report: $p, want $want"
d=$(cli call dispenser.report)
want="{\"units\":$units,\"dispensed\":$done}"
[ "$d" = "$want" ] || fail "dispenser.report: $d, want $want"
r=$(cli call orders.report)
[ "$(json_field "$r" completed)" -eq "$done" ] &&
    [ "$(json_field "$r" compensated)" -eq $((n - done)) ] ||
    fail "orders.report: $r (completed want $done)"
ok "totals agree: each effect exactly once ($done completed, $((n - done)) compensated)"
stop
