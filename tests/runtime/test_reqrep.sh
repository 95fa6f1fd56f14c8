# Request/reply through real plugins: a reply, a deadline that expires,
# an unknown service, and the latency histogram.
. "$(dirname "$0")/lib.sh"

config "$T/c.yaml" <<EOF2
plugins:
  - name: slow
    path: counter.so
    config:
      filter: ""
      delay: 400ms
  - name: echo
    path: $TP_DIR/echo.so
EOF2
start "$T/c.yaml"

r=$(cli call echo hello) || fail "call echo"
[ "$r" = "hello" ] || fail "echo replied '$r'"
ok "echo service replies"

# host->sleep(200) must really wait (and return early only on stop).
slept() { s=$(cli call echo.slept) && [ "$s" -ge 0 ]; }
wait_for 10 slept
[ "$(cli call echo.slept)" -ge 200 ] ||
    fail "host->sleep(200) returned after $(cli call echo.slept) ms"
ok "host->sleep waits its full time ($(cli call echo.slept) ms for 200)"

rc=0
cli call -t 100 slow.count 2>"$T/err" || rc=$?
[ "$rc" -eq 4 ] || fail "expired deadline: exit $rc, want 4"
grep -q "timed out" "$T/err" || fail "no 'timed out' message"
ok "a call past its deadline fails with 'timed out' and exit 4"

r=$(cli call -t 3000 slow.count) || fail "call slow.count with room"
echo "$r" | grep -q '"count":0' || fail "slow.count replied '$r'"
ok "the same service answers within a longer deadline"

rc=0
cli call nosuch 2>/dev/null || rc=$?
[ "$rc" -eq 1 ] || fail "unknown service: exit $rc, want 1"
ok "unknown service refused"

cli metrics | grep -q 'cairn_rpc_latency_seconds_bucket{service="echo"' ||
    fail "no latency histogram for echo"
ok "latency histogram per service"
stop
