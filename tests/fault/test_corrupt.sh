# A damaged store in the data dir: a truncated database, a scribbled
# header, scribbled pages in the middle, a garbage WAL.  cairnd must see
# it at open, move the damaged files aside (never delete them), say why
# in its log, raise the alarm metrics, and run on a fresh store that
# accepts and delivers new messages.  A WAL with a garbage header is one
# SQLite would ignore: it is moved aside and the database is kept.
. "$SRC_DIR/tests/runtime/lib.sh"

config "$T/c.yaml" <<EOF2
store:
  sync: full
routes:
  - filter: "keep/#"
    to: hold
  - filter: "new/#"
    to: tally
plugins:
  - name: hold           # nobody drains it: the database keeps these
    path: counter.so
    config: {filter: ""}
  - name: tally          # drains its destination through the inbox
    path: counter.so
    config: {filter: "", durable: true}
EOF2
sed -i 's/log_level: debug/log_level: warn/' "$T/c.yaml"
DB="$T/data/cairn.db"
PAD=$(head -c 1500 /dev/zero | tr '\0' 'x')

# fill: a store holding 300 records of 1.5 KB (about 120 pages).
fill() {
    rm -rf "$T/data"
    start "$T/c.yaml"
    i=0
    while [ $i -lt 300 ]; do
        echo "$i $PAD"
        i=$((i + 1))
    done | cli pub -l keep/x >/dev/null || fail "pub -l keep/x"
}

metric() {
    cli metrics | sed -n "s/^$1 //p"
}

# check CASE FILE: after the damage, cairnd starts, FILE (db or wal) was
# moved aside, the metrics say so, and new messages are delivered.
check() {
    start "$T/c.yaml"
    grep -q "store:.*cairn.db.*moved aside\|store:.*cairn.db-wal.*kept as" \
        "$T/cairnd.log" || fail "$1: the log does not say what happened"
    aside=$(ls "$T/data" | grep -c '^cairn\.db\.corrupt-' || true)
    if [ "$2" = db ]; then
        ls "$T/data"/cairn.db.corrupt-* | grep -q 'corrupt-[0-9]\{8\}T[0-9]\{6\}Z$' ||
            fail "$1: the database was not moved aside: $(ls "$T/data")"
        [ "$(metric 'cairn_store_corrupt_recovered_total{file="db"}')" = 1 ] ||
            fail "$1: cairn_store_corrupt_recovered_total{file=\"db\"} is not 1"
    else
        ls "$T/data"/cairn.db.corrupt-*-wal >/dev/null 2>&1 ||
            fail "$1: the WAL was not moved aside: $(ls "$T/data")"
        [ "$(metric 'cairn_store_corrupt_recovered_total{file="wal"}')" = 1 ] ||
            fail "$1: cairn_store_corrupt_recovered_total{file=\"wal\"} is not 1"
    fi
    [ "$(metric cairn_store_corrupt_files)" = 1 ] ||
        fail "$1: cairn_store_corrupt_files is not 1"
    [ "$aside" -ge 1 ] || fail "$1: no moved-aside file"
    seq 1 20 | cli pub -l new/x >/dev/null || fail "$1: pub on the fresh store"
    wait_for 20 sh -c "\"$CAIRN\" -s '$ADMIN' call tally.count | grep -q '\"durable\":20,'"
    stop
    ok "$1: detected, $2 moved aside ($(ls "$T/data" | grep corrupt | tr '\n' ' ')), alarm raised, 20 new messages delivered"
}

# Truncated: the file ends long before the size its header gives.
fill
stop
size=$(stat -c %s "$DB")
truncate -s $((size / 2 + 100)) "$DB"
check "truncated database" db

# Scribbled header: the first 100 bytes are garbage.
fill
stop
head -c 100 /dev/urandom | dd of="$DB" conv=notrunc 2>/dev/null
check "scribbled header" db

# Scribbled pages in the middle of the file.
fill
stop
pages=$(($(stat -c %s "$DB") / 4096))
head -c $((4096 * 8)) /dev/urandom |
    dd of="$DB" bs=4096 seek=$((pages / 2)) conv=notrunc 2>/dev/null
check "scribbled pages" db

# Garbage WAL: cairnd killed (the WAL stays), then the WAL overwritten.
fill
kill -KILL "$DPID"
wait "$DPID" 2>/dev/null || true
DPID=""
[ -s "$DB-wal" ] || fail "no WAL after kill -9"
head -c "$(stat -c %s "$DB-wal")" /dev/urandom | dd of="$DB-wal" conv=notrunc 2>/dev/null
check "garbage WAL" wal
