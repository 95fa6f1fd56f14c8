# Publish/subscribe end to end: MQTT filters through the CLI, counts in a
# real consumer plugin, `pub -l`, metrics, clean stop on SIGTERM.
. "$(dirname "$0")/lib.sh"

config "$T/c.yaml" <<EOF2
plugins:
  - name: tally
    path: counter.so
    config:
      filter: "a/+/c"
EOF2
start "$T/c.yaml"

# The CLI's subscription exists once the daemon answered 'sub'; wait until
# it shows in the metrics before publishing.
cli sub -n 2 -t 20 -v 'a/#' >"$T/sub.out" &
SUB=$!
wait_for 10 sh -c "\"$CAIRN\" -s '$ADMIN' metrics | grep -q 'filter=\"a/#\"'"

cli pub a/b/c one >/dev/null || fail "pub a/b/c"
cli pub x/y/z nomatch >/dev/null || fail "pub x/y/z"
cli pub a/q/c two >/dev/null || fail "pub a/q/c"
wait "$SUB" || fail "sub exited $?"
printf 'a/b/c one\na/q/c two\n' | cmp -s - "$T/sub.out" ||
    fail "sub printed: $(cat "$T/sub.out")"
ok "sub a/# got exactly the matching messages in order"

# pub -l: one message per line of standard input.
seq 1 100 | cli pub -l a/lines/c || fail "pub -l"
wait_for 10 sh -c "\"$CAIRN\" -s '$ADMIN' call tally.count | grep -q '\"count\":102'"
ok "counter saw 2 + 100 messages on a/+/c and none of x/y/z"

cli pub 'a/+/c' bad 2>"$T/err" && fail "pub to a wildcard topic succeeded"
grep -q "invalid topic" "$T/err" || fail "no clear error: $(cat "$T/err")"
ok "pub to a wildcard topic refused"

m=$(cli metrics)
echo "$m" | grep -q '^cairn_topic_published_total{topic="a/lines/c"} 100$' ||
    fail "metrics lack the topic count"
echo "$m" | grep -q '^cairn_plugin_delivered_total{plugin="tally"} 102$' ||
    fail "metrics lack the plugin count"
ok "metrics count per topic and per plugin"

cli plugins | grep -q '^tally .*running' || fail "plugins does not list tally"
stop
grep -q "stopped" "$T/cairnd.log" || fail "no clean stop in the log"
ok "SIGTERM stops cleanly with exit 0"
