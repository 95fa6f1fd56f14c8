# A slow subscriber's drops are counted, per subscriber, never silent:
# for its topic, delivered + dropped == published.
. "$(dirname "$0")/lib.sh"
N=2000

config "$T/c.yaml" <<EOF2
  sub_queue: 8
plugins:
  - name: slow
    path: counter.so
    config: {filter: "load/#", delay: 2ms}
  - name: fast
    path: counter.so
    config: {filter: "load/#"}
  - name: gen
    path: sensor-sim.so
    config: {topic: load, rate: 50000, count: $N}
EOF2
start "$T/c.yaml"

counts() {
    M=$(cli metrics)
    SD=$(echo "$M" | sed -n 's/^cairn_sub_dropped_total{owner="slow".*} \([0-9]*\)$/\1/p')
    SV=$(echo "$M" | sed -n 's/^cairn_sub_delivered_total{owner="slow".*} \([0-9]*\)$/\1/p')
    FD=$(echo "$M" | sed -n 's/^cairn_sub_dropped_total{owner="fast".*} \([0-9]*\)$/\1/p')
    FV=$(echo "$M" | sed -n 's/^cairn_sub_delivered_total{owner="fast".*} \([0-9]*\)$/\1/p')
    [ -n "$SD" ] && [ -n "$SV" ] && [ -n "$FV" ]
}
settled() { counts && [ $((SD + SV)) -ge $N ] && [ $((FD + FV)) -ge $N ]; }
wait_for 60 settled
[ $((SD + SV)) -eq $N ] || fail "slow: delivered $SV + dropped $SD != $N"
[ "$SD" -gt 0 ] || fail "slow subscriber dropped nothing: test is not loading it"
ok "slow subscriber: $SV delivered + $SD dropped = $N published"
[ $((FD + FV)) -eq $N ] || fail "fast: $FV + $FD != $N"
ok "fast subscriber: $FV delivered, $FD dropped"
stop
