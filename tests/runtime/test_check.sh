# cairnd --check: valid files pass; broken ones fail with file:line.
. "$(dirname "$0")/lib.sh"

# bad NAME WANT: --check on $T/NAME.yaml exits 3 and prints WANT.
bad() {
    rc=0
    "$CAIRND" --check -c "$T/$1.yaml" -P "$PLUGIN_DIR" >"$T/out" 2>&1 || rc=$?
    [ "$rc" -eq 3 ] || fail "$1: exit $rc, want 3: $(cat "$T/out")"
    grep -q "$2" "$T/out" || fail "$1: want '$2', got: $(cat "$T/out")"
    ok "$1: $(cat "$T/out")"
}

"$CAIRND" --check -c "$SRC_DIR/examples/quickstart.yaml" -P "$PLUGIN_DIR" ||
    fail "quickstart.yaml does not check"
ok "examples/quickstart.yaml is valid"

printf 'runtime:\n  name: x\n  colour: blue\n' >"$T/unknown.yaml"
bad unknown "unknown.yaml:3:.*colour"

printf 'store:\n  max_bytes: lots\n' >"$T/type.yaml"
bad type "type.yaml:2:.*max_bytes"

printf 'runtime:\n  name: [x\n' >"$T/syntax.yaml"
bad syntax "syntax.yaml:[0-9]*:"

cat >"$T/pcfg.yaml" <<EOF2
plugins:
  - name: s
    path: sensor-sim.so
    config:
      rate: 5
      colour: red
EOF2
bad pcfg "pcfg.yaml:6:.*colour"

cat >"$T/prange.yaml" <<EOF2
plugins:
  - name: s
    path: sensor-sim.so
    config:
      sensors: 0
EOF2
bad prange "prange.yaml:5:.*sensors"

cat >"$T/dup.yaml" <<EOF2
plugins:
  - name: s
    path: sensor-sim.so
  - name: s
    path: counter.so
EOF2
bad dup "dup.yaml:4:"

rc=0
"$CAIRND" --check -c "$T/nonexistent.yaml" >"$T/out" 2>&1 || rc=$?
[ "$rc" -eq 3 ] || fail "missing file: exit $rc"
ok "missing config file: $(cat "$T/out")"

rc=0
"$CAIRND" --bogus >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "bad option: exit $rc, want 2"
"$CAIRND" --help | grep -q "usage: cairnd" || fail "--help"
"$CAIRN" --help | grep -q "usage: cairn" || fail "cairn --help"
"$CAIRN" sub --help | grep -q "FILTER" || fail "cairn sub --help"
rc=0
"$CAIRN" -s "ipc://$T/nobody.sock" status 2>/dev/null || rc=$?
[ "$rc" -eq 3 ] || fail "no daemon: exit $rc, want 3"
ok "usage errors exit 2, no daemon exits 3, --help everywhere"
"$CAIRND" --describe "$PLUGIN_DIR/sensor-sim.so" | grep -q "rate" ||
    fail "--describe does not document the config"
ok "--describe prints a plugin's config reference"
