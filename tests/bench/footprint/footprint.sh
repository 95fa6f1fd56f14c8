#!/bin/sh
# footprint.sh - the footprint report.
#
#   sh tests/bench/footprint/footprint.sh HOST_BUILD [BUILD...]
#   e.g. sh tests/bench/footprint/footprint.sh build/x86_64 build/rpi4 build/armv7
#
# For every build given: the stripped sizes of cairnd, libcairn and each
# plugin, for the architecture it was built for (stripped here with that
# architecture's strip).  Target: cairnd + libcairn at most 200 KiB for
# aarch64.
#
# For HOST_BUILD, which must run here: the idle RSS and PSS of cairnd with
# three plugins, next to those of the floor (floor.c: a process that only
# loads and initializes nng, libcbor, libyaml, SQLite and libc), measured in the
# same run.  Target: cairnd's RSS at most 1.25x the floor's (and at most
# 4 MiB).  "Idle" is after the admin socket answers and a settling time.
#
# Prints the figures, then one JSON line ({"bench":"footprint",...}).
# Exits 0 whether or not a target is met (a report, not a test); non-zero
# only when something could not be measured.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
SETTLE=${FOOTPRINT_SETTLE:-2}

[ $# -ge 1 ] || {
    echo "usage: $0 HOST_BUILD [BUILD...]" >&2
    exit 2
}
HOST=$(cd "$1" && pwd)

T=$(mktemp -d "${TMPDIR:-/tmp}/cairn-footprint.XXXXXX")
PIDS=""
cleanup() {
    for p in $PIDS; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
die() {
    echo "footprint: $*" >&2
    exit 1
}

# ---- stripped sizes ------------------------------------------------------

# arch FILE: the ELF's architecture, as cairn's boards name them.
arch() {
    case "$(readelf -h "$1" | sed -n 's/^ *Machine: *//p')" in
    AArch64) echo aarch64 ;;
    ARM) echo armhf ;;
    *X86-64*) echo x86_64 ;;
    *) echo unknown ;;
    esac
}

# stripped FILE: its size in bytes once stripped by its architecture's strip.
stripped() {
    case "$(arch "$1")" in
    aarch64) s=aarch64-linux-gnu-strip ;;
    armhf) s=arm-linux-gnueabihf-strip ;;
    *) s=strip ;;
    esac
    command -v "$s" >/dev/null || die "$s not found"
    "$s" -o "$T/stripped" "$1" || die "$s $1"
    stat -c %s "$T/stripped"
}

kib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'; }

SIZES_JSON=""
echo "== stripped sizes (bytes)"
printf '%-10s %-8s %9s %9s %15s  %s\n' build arch cairnd libcairn "cairnd+lib" plugins
for b in "$@"; do
    B=$(cd "$b" && pwd)
    [ -f "$B/core/cairnd" ] || die "$B/core/cairnd not built"
    lib=$(find "$B/core" -maxdepth 1 -type f -name 'libcairn.so.*' | head -n 1)
    [ -n "$lib" ] || die "no libcairn.so in $B/core"
    a=$(arch "$B/core/cairnd")
    d=$(stripped "$B/core/cairnd")
    l=$(stripped "$lib")
    core=$((d + l))
    plugins=""
    pjson=""
    for p in "$B"/plugins/*.so; do
        [ -f "$p" ] || continue
        n=$(basename "$p" .so)
        s=$(stripped "$p")
        plugins="$plugins $n=$s"
        pjson="$pjson${pjson:+,}\"$n\":$s"
    done
    verdict=""
    if [ "$a" = aarch64 ]; then
        if [ "$core" -le 204800 ]; then verdict="(target 200 KiB: met)"; else verdict="(target 200 KiB: OVER)"; fi
    fi
    printf '%-10s %-8s %9d %9d %9d %5s KiB %s  %s\n' "$(basename "$B")" "$a" "$d" "$l" \
        "$core" "$(kib "$core")" "$verdict" "$plugins"
    SIZES_JSON="$SIZES_JSON${SIZES_JSON:+,}{\"build\":\"$(basename "$B")\",\"arch\":\"$a\",\"cairnd\":$d,\"libcairn\":$l,\"core\":$core,\"plugins\":{$pjson}}"
done

# ---- idle memory on the host --------------------------------------------

# mem PID: "RSS PSS" in KiB, the largest of a few samples.
mem() {
    pid=$1
    r=0
    p=0
    for i in 1 2 3 4 5; do
        set -- $(awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } END { print r, p }' \
            "/proc/$pid/smaps_rollup")
        [ "$1" -gt "$r" ] && r=$1
        [ "$2" -gt "$p" ] && p=$2
        sleep 0.2
    done
    echo "$r $p"
}

# until_ok SECONDS COMMAND...: runs COMMAND until it succeeds.
until_ok() {
    end=$(($(date +%s) + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || die "timed out: $*"
        sleep 0.05
    done
}

[ "$(arch "$HOST/core/cairnd")" = "$(uname -m)" ] ||
    die "$HOST is not a build for this host ($(uname -m))"

# The floor: built with the measured build when it has the benchmarks,
# else here as a project of its own with the same toolchain and build type.
FLOOR=$HOST/tests/bench/footprint/footprint_floor
if [ ! -x "$FLOOR" ]; then
    cache() { sed -n "s/^$1:[A-Z]*=//p" "$HOST/CMakeCache.txt"; }
    set -- -DCMAKE_BUILD_TYPE="$(cache CMAKE_BUILD_TYPE)" \
        -DCMAKE_C_COMPILER="$(cache CMAKE_C_COMPILER)"
    tc=$(cache CMAKE_TOOLCHAIN_FILE)
    [ -n "$tc" ] && set -- "$@" -DCMAKE_TOOLCHAIN_FILE="$tc"
    cmake -S "$HERE" -B "$HOST/footprint-floor" "$@" >"$T/floor-build.log" 2>&1 &&
        cmake --build "$HOST/footprint-floor" >>"$T/floor-build.log" 2>&1 ||
        die "building the floor: $(tail -20 "$T/floor-build.log")"
    FLOOR=$HOST/footprint-floor/footprint_floor
fi

# cairnd with three plugins, each its own shared object when the test
# plugins are built (echo.so), else two counters.
third="path: counter.so
    config: {filter: \"\", queue: jobs}"
[ -f "$HOST/tests/runtime/plugins/echo.so" ] &&
    third="path: $HOST/tests/runtime/plugins/echo.so"
ADMIN="ipc://$T/admin.sock"
cat >"$T/c.yaml" <<EOF
runtime:
  name: footprint
  data_dir: $T/data
  admin: $ADMIN
  log_level: warn
plugins:
  - name: sensors
    path: sensor-sim.so
    config: {topic: sensors/room1, rate: 1}
  - name: tally
    path: counter.so
    config: {filter: "sensors/#"}
  - name: third
    $third
EOF

# bymap PID: RSS in KiB per mapped file (or [anon], [heap], [stack]).
bymap() {
    awk '/^[0-9a-f]+-[0-9a-f]+ / { n = $6; if (n == "") n = "[anon]"; sub(".*/", "", n) }
         /^Rss:/ { r[n] += $2 }
         END { for (n in r) print n, r[n] }' "/proc/$1/smaps"
}

# ticks PID: CPU time used so far (user + system), in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# measure N: starts cairnd and the floor, lets them settle, appends
# "RSS PSS FLOOR_RSS FLOOR_PSS CAIRND_TICKS_WHILE_SETTLING" to $T/rounds and keeps the per-mapping
# figures as $T/d.N and $T/f.N; stops both.
measure() {
    "$HOST/core/cairnd" -c "$T/c.yaml" -P "$HOST/plugins" >"$T/cairnd.log" 2>&1 &
    DPID=$!
    PIDS="$DPID"
    until_ok 20 "$HOST/core/cairn" -s "$ADMIN" status
    "$HOST/core/cairn" -s "$ADMIN" status | grep -q "3 running" ||
        die "cairnd does not run 3 plugins: $("$HOST/core/cairn" -s "$ADMIN" status)"
    rm -f "$T/floor.out"
    "$FLOOR" "$T" >"$T/floor.out" 2>&1 &
    FPID=$!
    PIDS="$DPID $FPID"
    until_ok 20 grep -q ready "$T/floor.out"
    c0=$(ticks "$DPID")
    sleep "$SETTLE"
    c1=$(ticks "$DPID")
    echo "$(mem "$DPID") $(mem "$FPID") $((c1 - c0))" >>"$T/rounds"
    bymap "$DPID" >"$T/d.$1"
    bymap "$FPID" >"$T/f.$1"
    kill -TERM "$DPID" "$FPID"
    wait "$DPID" || die "cairnd exited $? on SIGTERM: $(tail -5 "$T/cairnd.log")"
    wait "$FPID" || true
    PIDS=""
}

# Resident pages of shared libraries vary from run to run (readahead,
# fault-around): the round with the median ratio is the one reported.
ROUNDS=${FOOTPRINT_ROUNDS:-3}
: >"$T/rounds"
i=1
while [ "$i" -le "$ROUNDS" ]; do
    measure "$i"
    i=$((i + 1))
done
set -- $(awk '{ print $1 / $3, NR, $0 }' "$T/rounds" | sort -n |
    awk -v m=$(((ROUNDS + 1) / 2)) 'NR == m { print $2, $3, $4, $5, $6, $7 }')
PICK=$1
RSS=$2
PSS=$3
FRSS=$4
FPSS=$5
# An idle cairnd should use next to no CPU: say so when it does not.
CPU=$(awk -v t="$6" -v hz="$(getconf CLK_TCK)" -v s="$SETTLE" \
    'BEGIN { printf "%.1f", 100 * t / hz / s }')
cp "$T/d.$PICK" "$T/d.map"
cp "$T/f.$PICK" "$T/f.map"
ALL=$(awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $1 / $3 }' "$T/rounds")

ratio=$(awk -v a="$RSS" -v b="$FRSS" 'BEGIN { printf "%.2f", a / b }')
pratio=$(awk -v a="$PSS" -v b="$FPSS" 'BEGIN { printf "%.2f", a / b }')
met=$(awk -v r="$ratio" -v a="$RSS" 'BEGIN { print (r <= 1.25 && a <= 4096) ? "met" : "OVER" }')
echo
echo "== idle memory on this host ($(uname -m)), KiB"
printf '%-38s %8s %8s\n' "" RSS PSS
printf '%-38s %8d %8d\n' "cairnd, 3 plugins" "$RSS" "$PSS"
printf '%-38s %8d %8d\n' "floor (nng, cbor, yaml, sqlite, libc)" "$FRSS" "$FPSS"
printf '%-38s %8s %8s   target RSS <= 1.25x floor and <= 4096 KiB: %s\n' \
    "cairnd / floor" "$ratio" "$pratio" "$met"
echo "(median of $ROUNDS rounds; RSS ratios: $ALL)"
echo "cairnd's CPU while idle: $CPU% of one core"
echo "cairnd's RSS beyond the floor's, largest first (KiB):"
awk 'NR == FNR { f[$1] = $2; next } { d = $2 - f[$1]; if (d >= 16) print d, $1 }' \
    "$T/f.map" "$T/d.map" | sort -rn | head -n 8 |
    while read -r d n; do printf '  %6d  %s\n' "$d" "$n"; done
echo
printf '{"bench":"footprint","host":"%s","sizes":[%s],"rss_kib":%d,"pss_kib":%d,"floor_rss_kib":%d,"floor_pss_kib":%d,"rss_ratio":%s,"pss_ratio":%s,"idle_cpu_pct":%s,"target_rss_ratio":1.25,"target_core_aarch64_bytes":204800}\n' \
    "$(uname -m)" "$SIZES_JSON" "$RSS" "$PSS" "$FRSS" "$FPSS" "$ratio" "$pratio" "$CPU"
