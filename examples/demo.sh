#!/bin/sh
# demo.sh - sets up and runs the quickstart demo: builds cairn, starts
# cairnd with a simulated sensor and a consumer, and shows the CLI at work;
# then the MQTT bridge against a local mosquitto (examples/demo-mqtt.sh).
# Stops the daemons when done.  Run from anywhere, as root or with sudo.
set -eu
cd "$(dirname "$0")/.."
sh tests/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release >/dev/null
B=build/release
CFG=examples/quickstart.yaml
cairn() { "$B/core/cairn" -c "$CFG" "$@"; }

"$B/core/cairnd" --check -c "$CFG" -P "$B/plugins"
"$B/core/cairnd" -c "$CFG" -P "$B/plugins" 2>/tmp/cairn-demo.log &
PID=$!
trap '[ -z "$PID" ] || kill -TERM $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
i=0
until cairn status >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { cat /tmp/cairn-demo.log; exit 1; }
    sleep 0.1
done

echo "== cairn status";   cairn status
echo "== cairn plugins";  cairn plugins
echo "== cairn sub -v -n 6 'sensors/#'   (readings as they arrive)"
cairn sub -v -n 6 -t 30 'sensors/#'
echo "== cairn pub sensors/manual/s0 '{\"value\":42}'"
cairn pub sensors/manual/s0 '{"value":42}'
echo "== cairn call tally.count   (request/reply to the counter plugin)"
cairn call tally.count
echo "== cairn metrics | grep topic_published"
cairn metrics | grep '^cairn_topic_published_total'
echo "== stopping (daemon log in /tmp/cairn-demo.log)"
kill -TERM $PID
wait $PID || true
PID=""
echo
echo "===== the MQTT bridge (examples/demo-mqtt.sh)"
B=$B sh examples/demo-mqtt.sh
