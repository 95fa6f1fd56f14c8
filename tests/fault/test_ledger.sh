# The ledger can fail: outbox_check, which the crash and disk-full tests
# rely on, is run on an outbox and producer log damaged on purpose, once
# per anomaly, and must name each one with its count (and exit non-zero).
. "$SRC_DIR/tests/runtime/lib.sh"
command -v sqlite3 >/dev/null || fail "sqlite3 (the CLI) is missing: tests/install-deps.sh"

config "$T/c.yaml" <<EOF2
store:
  sync: full
routes:
  - filter: "led/#"
    to: sink
plugins:
  - name: sink
    path: counter.so
    config: {filter: ""}
EOF2
sed -i 's/log_level: debug/log_level: warn/' "$T/c.yaml"
start "$T/c.yaml"
"$PRODUCER" "$ADMIN" led/x 40 4 "$T/p.log" || fail "producer"
stop
DB="$T/data/cairn.db"
cp "$DB" "$T/clean.db"

# expect NAME WANT LOG: outbox_check on $DB with LOG says WANT.
expect() {
    rc=0
    "$OUTBOX_CHECK" "$DB" sink "$3" >"$T/check.out" || rc=$?
    tail -1 "$T/check.out" | grep -q "$2" ||
        fail "$1: want '$2', got: $(tail -1 "$T/check.out")"
    if [ "$2" = "lost 0, duplicated 0, unexpected 0, reordered 0" ]; then
        [ $rc -eq 0 ] || fail "$1: exit $rc on a clean outbox"
    else
        [ $rc -ne 0 ] || fail "$1: exit 0 although it found: $2"
    fi
    cp "$T/clean.db" "$DB"
    ok "$1: $(tail -1 "$T/check.out")"
}

# seq_of N: the outbox row of message N (payload {"seq":N}).
seq_of() {
    sqlite3 "$DB" "SELECT seq FROM outbox WHERE instr(env, CAST('{\"seq\":$1}' AS BLOB)) > 0"
}

expect "clean" "lost 0, duplicated 0, unexpected 0, reordered 0" "$T/p.log"

{ cat "$T/p.log"; echo "A 40"; } >"$T/lost.log"
expect "lost" "lost 1, duplicated 0, unexpected 0, reordered 0" "$T/lost.log"

sed 's/^A 5$/R 5/' "$T/p.log" >"$T/refused.log"
expect "unexpected" "lost 0, duplicated 0, unexpected 1, reordered 0" "$T/refused.log"

s=$(seq_of 39)
sqlite3 "$DB" "INSERT INTO outbox(dest, okey, prio, env, bytes, created, expires)
  SELECT dest, okey, prio, env, bytes, created, expires FROM outbox WHERE seq = $s"
expect "duplicated" "lost 0, duplicated 1, unexpected 0, reordered 1" "$T/p.log"

a=$(seq_of 4)
b=$(seq_of 8)
sqlite3 "$DB" "CREATE TEMP TABLE t AS SELECT seq, env FROM outbox WHERE seq IN ($a, $b);
  UPDATE outbox SET env = (SELECT env FROM t WHERE t.seq =
    CASE outbox.seq WHEN $a THEN $b ELSE $a END) WHERE seq IN ($a, $b)"
expect "reordered" "lost 0, duplicated 0, unexpected 0, reordered 1" "$T/p.log"
