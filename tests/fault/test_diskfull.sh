# Disk full: the data dir on a small tmpfs.  Producers get the reject
# error, the daemon keeps running, nothing already stored is corrupted,
# and ingest resumes when space is freed.  Needs mount(2): skipped with a
# message where that is not permitted.
. "$SRC_DIR/tests/runtime/lib.sh"

mkdir -p "$T/data"
if ! mount -t tmpfs -o size=4m cairn-test "$T/data" 2>/dev/null; then
    echo "SKIP: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)"
    exit 0
fi
umount_data() { umount "$T/data" 2>/dev/null || umount -l "$T/data" 2>/dev/null || true; }
trap 'umount_data; cleanup' EXIT

config "$T/c.yaml" <<EOF2
store:
  sync: full
  max_bytes: 1GiB         # the disk fills long before this limit
routes:
  - filter: "fill/#"
    to: sink
plugins:
  - name: sink
    path: counter.so
    config: {filter: ""}
EOF2
sed -i 's/log_level: debug/log_level: warn/' "$T/c.yaml"
start "$T/c.yaml"

# Leave little room: a filler file takes most of the tmpfs.
free_kb=$(df -k "$T/data" | awk 'NR == 2 {print $4}')
dd if=/dev/zero of="$T/data/filler" bs=1k count=$((free_kb - 512)) 2>/dev/null || true

"$PRODUCER" "$ADMIN" fill/x 20000 4 "$T/p1.log"
acc1=$(grep -c '^A' "$T/p1.log" || true)
ref1=$(grep -c '^R' "$T/p1.log" || true)
[ "$ref1" -gt 0 ] || fail "the disk never filled ($acc1 accepted)"
[ "$acc1" -gt 0 ] || fail "nothing was accepted before the disk filled"
ok "disk full: $acc1 accepted, then $ref1 refused"

rc=0
cli pub fill/x one-more 2>"$T/err" || rc=$?
[ "$rc" -eq 1 ] || fail "pub on a full disk: exit $rc, want 1"
grep -qi "full" "$T/err" || fail "refusal does not say full: $(cat "$T/err")"
cli status >/dev/null || fail "daemon not answering on a full disk"
kill -0 "$DPID" || fail "daemon died on a full disk"
ok "producer gets 'full', daemon keeps running"

rm -f "$T/data/filler"
"$PRODUCER" "$ADMIN" fill/y 200 4 "$T/p2.log"
acc2=$(grep -c '^A' "$T/p2.log" || true)
[ "$acc2" -eq 200 ] || fail "after freeing space only $acc2 of 200 accepted"
ok "ingest resumes once space is freed"
stop

"$OUTBOX_CHECK" "$T/data/cairn.db" sink "$T/p1.log" fill/x >"$T/check.out" ||
    fail "stored data after disk full: $(tail -5 "$T/check.out")"
tail -1 "$T/check.out" | grep -q "lost 0, duplicated 0, unexpected 0, reordered 0$" ||
    fail "ledger before the disk filled: $(tail -1 "$T/check.out")"
ok "before the disk filled: $(tail -1 "$T/check.out")"
"$OUTBOX_CHECK" "$T/data/cairn.db" sink "$T/p2.log" fill/y >"$T/check.out" ||
    fail "stored data after freeing space: $(tail -5 "$T/check.out")"
tail -1 "$T/check.out" | grep -q "lost 0, duplicated 0, unexpected 0, reordered 0$" ||
    fail "ledger after space was freed: $(tail -1 "$T/check.out")"
ok "after space was freed: $(tail -1 "$T/check.out")"
