# kill -9 during a stream: a producer streams COUNT messages into a durable
# route while cairnd is killed with SIGKILL at random moments, KILLS times,
# and restarted each time.  Afterwards every message the producer saw
# accepted is in the outbox exactly once, in order per key, and nothing
# it never had accepted is there.
. "$SRC_DIR/tests/runtime/lib.sh"
COUNT=${CRASH_COUNT:-100000}
KILLS=${CRASH_KILLS:-20}

config "$T/c.yaml" <<EOF2
store:
  sync: full
routes:
  - filter: "telemetry/#"
    to: sink
plugins:
  - name: sink           # a destination nobody drains: the outbox keeps all
    path: counter.so
    config: {filter: ""}
EOF2
sed -i 's/log_level: debug/log_level: warn/' "$T/c.yaml"

"$PRODUCER" "$ADMIN" telemetry/line "$COUNT" 8 "$T/producer.log" &
PROD=$!
start "$T/c.yaml"
k=0
while [ $k -lt "$KILLS" ] && kill -0 "$PROD" 2>/dev/null; do
    # A random moment: 50..800 ms of streaming.
    ms=$(( ($(od -An -N2 -tu2 /dev/urandom) % 750) + 50 ))
    sleep "$(printf '0.%03d' "$ms")"
    kill -KILL "$DPID"
    wait "$DPID" 2>/dev/null || true
    k=$((k + 1))
    start "$T/c.yaml"
done
[ $k -eq "$KILLS" ] || fail "producer finished after only $k kills: raise CRASH_COUNT"
ok "cairnd killed with SIGKILL $k times during the stream"
wait "$PROD" || fail "producer failed"
stop

accepted=$(grep -c '^A' "$T/producer.log" || true)
[ "$accepted" -gt 0 ] || fail "nothing accepted"
"$OUTBOX_CHECK" "$T/data/cairn.db" sink "$T/producer.log" >"$T/check.out" ||
    fail "outbox check: $(cat "$T/check.out" | tail -15)"
tail -1 "$T/check.out" | grep -q "lost 0, duplicated 0, unexpected 0, reordered 0$" ||
    fail "ledger: $(tail -1 "$T/check.out")"
ok "$(tail -1 "$T/check.out")"
