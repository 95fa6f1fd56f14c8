# Work queue with competing consumers: N readings pushed by sensor-sim to
# a queue drained by 3 counters; every reading processed exactly once.
. "$(dirname "$0")/lib.sh"
N=3000

config "$T/c.yaml" <<EOF2
plugins:
  - name: w1
    path: counter.so
    config: {filter: "", queue: jobs}
  - name: w2
    path: counter.so
    config: {filter: "", queue: jobs}
  - name: w3
    path: counter.so
    config: {filter: "", queue: jobs}
  - name: producer
    path: sensor-sim.so
    config: {queue: jobs, rate: 20000, count: $N}
EOF2
start "$T/c.yaml"

# total: sums the consumers' tallies into TOTAL and SEQ, each one's in got_W.
total() {
    TOTAL=0
    SEQ=0
    for w in w1 w2 w3; do
        r=$(cli call $w.count) || return 1
        q=$(json_field "$r" queue)
        TOTAL=$((TOTAL + q))
        SEQ=$((SEQ + $(json_field "$r" seq_sum)))
        eval "got_$w=$q"
    done
}
done_all() { total && [ "$TOTAL" -ge $N ]; }
wait_for 60 done_all
total
[ "$TOTAL" -eq $N ] || fail "consumers processed $TOTAL items, want $N"
[ "$SEQ" -eq $((N * (N - 1) / 2)) ] || fail "seq sum $SEQ: an item was lost or doubled"
ok "$N work items, each processed exactly once"
[ "$got_w1" -gt 0 ] && [ "$got_w2" -gt 0 ] && [ "$got_w3" -gt 0 ] ||
    fail "not every consumer got work: $got_w1 $got_w2 $got_w3"
ok "work spread over 3 consumers ($got_w1 / $got_w2 / $got_w3)"
stop
