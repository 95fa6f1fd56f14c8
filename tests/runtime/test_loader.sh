# The loader refuses bad shared objects with a message naming the file and
# the reason, and the daemon carries on when the plugin is optional.
. "$(dirname "$0")/lib.sh"

# refuse SO REASON: cairnd --check must fail and name SO and REASON.
refuse() {
    config "$T/r.yaml" <<EOF2
plugins:
  - name: bad
    path: $1
EOF2
    rc=0
    "$CAIRND" --check -c "$T/r.yaml" >"$T/out" 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || fail "$1 was accepted"
    grep -q "$1" "$T/out" || fail "message does not name $1: $(cat "$T/out")"
    grep -q "$2" "$T/out" || fail "message for $1 lacks '$2': $(cat "$T/out")"
    ok "refused $(basename "$1"): $(cat "$T/out")"
}

echo "not an ELF file" >"$T/text.so"
refuse "$T/text.so" "not a shared object"

# The same plugin, its ELF header saying aarch64 (or x86_64 on an aarch64
# host): e_machine is the 2 bytes at offset 18.
cp "$PLUGIN_DIR/counter.so" "$T/foreign.so"
case "$(uname -m)" in
x86_64) printf '\267\000' ;; # EM_AARCH64 = 183
*) printf '\076\000' ;;      # EM_X86_64 = 62
esac | dd of="$T/foreign.so" bs=1 seek=18 conv=notrunc 2>/dev/null
refuse "$T/foreign.so" "another architecture"

refuse "$T/missing.so" "cannot open"
refuse "$TP_DIR/noentry.so" "no entry symbol cairn_plugin_v1"
refuse "$TP_DIR/abi2.so" "plugin ABI 2.0"
refuse "$TP_DIR/small.so" "smaller than ABI 1.0"

# A plugin whose init fails stops a required start, with its name.
config "$T/c.yaml" <<EOF2
plugins:
  - name: broken
    path: $TP_DIR/initfail.so
EOF2
rc=0
"$CAIRND" -c "$T/c.yaml" -P "$PLUGIN_DIR" >"$T/out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "required plugin failing init: exit $rc, want 1"
grep -q "broken.*init failed" "$T/out" || fail "no init failure: $(cat "$T/out")"
ok "required plugin failing init stops cairnd with exit 1"

# Optional plugins that fail (to load or to init) leave the others running;
# plugins built for ABI 1.0 exactly and for a later 1.x minor load.
config "$T/c.yaml" <<EOF2
plugins:
  - name: broken
    path: $TP_DIR/initfail.so
    optional: true
  - name: absent
    path: $T/text.so
    optional: true
  - name: old
    path: $TP_DIR/v10.so
  - name: newer
    path: $TP_DIR/future.so
  - name: echo
    path: $TP_DIR/echo.so
EOF2
start "$T/c.yaml"
p=$(cli plugins)
echo "$p" | grep -q '^broken .*failed.*init failed' || fail "broken not failed: $p"
echo "$p" | grep -q '^absent .*failed.*not a shared object' || fail "absent: $p"
echo "$p" | grep -q '^old .*running' || fail "ABI 1.0 plugin not running: $p"
echo "$p" | grep -q '^newer .*running' || fail "ABI 1.7 plugin not running: $p"
[ "$(cli call echo ping)" = "ping" ] || fail "echo plugin not serving"
cli status | grep -q "5 (3 running, 2 failed)" || fail "status: $(cli status)"
ok "optional failures leave the others running; ABI 1.0 and 1.7 plugins load"
stop
