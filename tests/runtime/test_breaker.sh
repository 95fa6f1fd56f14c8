# Circuit breaker on request/reply calls, end to end: a service that
# keeps timing out opens its breaker after `failures` calls; while open,
# calls fail at once with "circuit open" and never reach the service;
# `cairn status`, `cairn services` and `cairn metrics` show the state;
# after `open` a probe call gets through and closes it again.  "slow"
# stays open for an hour, so the open-state checks hold however slowly
# the machine (or qemu) runs; "flap" opens for 300ms, for the probe.
. "$(dirname "$0")/lib.sh"

config "$T/c.yaml" <<EOF2
calls:
  failures: 2
  open: 1h
  services:
    - name: quick.count
      failures: 0
    - name: flap.count
      open: 300ms
plugins:
  - name: slow
    path: counter.so
    config:
      filter: ""
      delay: 300ms
  - name: quick
    path: counter.so
    config:
      filter: ""
  - name: flap
    path: counter.so
    config:
      filter: ""
      delay: 300ms
EOF2
start "$T/c.yaml"

calls_made() { # sum of cairn_rpc_calls_total for slow.count
    cli metrics | awk '/^cairn_rpc_calls_total\{service="slow.count"/ {s += $2}
                       END {print s + 0}'
}

for i in 1 2; do
    rc=0
    cli call -t 50 slow.count 2>/dev/null || rc=$?
    [ "$rc" -eq 4 ] || fail "call $i: exit $rc, want 4 (timeout)"
done
[ "$(calls_made)" -eq 2 ] || fail "calls made: $(calls_made), want 2"
cli services | grep -q '^slow.count slow [0-9]* open$' ||
    fail "breaker not open: $(cli services)"
ok "two timeouts open the breaker"

rc=0
cli call -t 3000 slow.count 2>"$T/err" || rc=$?
[ "$rc" -eq 1 ] || fail "call while open: exit $rc, want 1"
grep -q "circuit open" "$T/err" || fail "no 'circuit open' in: $(cat "$T/err")"
[ "$(calls_made)" -eq 2 ] || fail "a call reached the open service"
cli metrics | grep -q '^cairn_rpc_rejected_total{service="slow.count"} 1$' ||
    fail "rejected call not counted"
cli metrics | grep -q '^cairn_rpc_breaker_state{service="slow.count"} 1$' ||
    fail "breaker state gauge is not 1"
cli status | grep -q '^  slow.count slow [0-9]* open$' ||
    fail "cairn status does not show the open breaker"
ok "while open, calls fail fast with 'circuit open' and do not reach it"

# Timeouts on a service without a breaker do not open anything.
for i in 1 2 3; do
    cli call -t 3000 quick.count >/dev/null || fail "quick.count"
done
cli services | grep -q '^quick.count quick 3 closed$' ||
    fail "quick.count: $(cli services)"
ok "other services are not affected"

# After the open interval, one probe passes and closes it.
for i in 1 2; do
    rc=0
    cli call -t 50 flap.count 2>/dev/null || rc=$?
    [ "$rc" -eq 4 ] || fail "flap call $i: exit $rc, want 4 (timeout)"
done
cli services | grep -q '^flap.count flap [0-9]* open$' ||
    fail "flap breaker not open: $(cli services)"
probe() { cli call -t 5000 flap.count >/dev/null 2>&1; }
wait_for 20 probe
cli services | grep -q '^flap.count flap [0-9]* closed$' ||
    fail "breaker not closed after a good probe: $(cli services)"
cli metrics | grep -q \
    '^cairn_rpc_breaker_transitions_total{service="flap.count",to="closed"} 1$' ||
    fail "closing transition not counted"
cli services | grep -q '^slow.count slow [0-9]* open$' ||
    fail "slow.count closed within its hour: $(cli services)"
ok "a successful probe closes it again"
stop
