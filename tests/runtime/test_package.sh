# The .deb packages of this build: built with cpack, split into cairn and
# cairn-dev as cmake/packaging.cmake says, unpacked into a scratch root
# (dpkg -x: nothing is installed on this machine), and used from there:
# the packaged cairnd checks the packaged config, examples/hello-plugin
# builds against the packaged SDK (the CMake package is relocatable), and
# the packaged cairnd runs it next to a packaged plugin.
. "$(dirname "$0")/lib.sh"
: "${BUILD_DIR:?}" "${SRC_DIR:?}" "${CMAKE_COMMAND:?}" "${C_COMPILER:?}"
CPACK_COMMAND=$(dirname "$CMAKE_COMMAND")/cpack

"$CPACK_COMMAND" --config "$BUILD_DIR/CPackConfig.cmake" -B "$T/pkg" \
    >"$T/cpack.log" 2>&1 || fail "cpack: $(tail -20 "$T/cpack.log")"
RT=$(ls "$T"/pkg/cairn_*.deb 2>/dev/null) || fail "no cairn_*.deb"
DEV=$(ls "$T"/pkg/cairn-dev_*.deb 2>/dev/null) || fail "no cairn-dev_*.deb"
ok "cpack made $(basename "$RT") and $(basename "$DEV")"

arch=$(dpkg --print-architecture)
[ "$(dpkg-deb -f "$RT" Architecture)" = "$arch" ] || fail "runtime package not $arch"
dpkg-deb -f "$RT" Depends | grep -q "libnng1" || fail "runtime package lacks Depends: libnng1"
dpkg-deb -f "$DEV" Depends | grep -q "^cairn (= " || fail "cairn-dev does not depend on cairn"
dpkg-deb --ctrl-tarfile "$RT" | tar -xO ./conffiles | grep -q "/cairn/cairn.yaml$" ||
    fail "the config is not a conffile"
ok "control: Architecture $arch, dependencies, conffiles"

# has DEB PATTERN...: every PATTERN (an extended regex) matches a path in DEB.
has() {
    deb=$1
    shift
    dpkg-deb -c "$deb" | awk '{print $6}' >"$T/list"
    for re in "$@"; do
        grep -Eq "$re" "$T/list" || fail "$(basename "$deb") has no $re"
    done
}
has "$RT" '/bin/cairnd$' '/bin/cairn$' '/libcairn\.so\.[0-9]+$' \
    '/cairn/plugins/counter\.so$' '/cairn/plugins/sensor-sim\.so$' \
    '/etc/cairn/cairn\.yaml$' '/lib/systemd/system/cairnd\.service$'
has "$DEV" '/include/cairn/cairn\.h$' '/include/cairn/plugin\.h$' \
    '/cmake/cairn/cairnConfig\.cmake$' '/cmake/cairn/cairnTargets\.cmake$' \
    '/pkgconfig/cairn\.pc$' '/libcairn\.so$'
dpkg-deb -c "$RT" | awk '{print $6}' |
    grep -E '/include/|/cmake/|/pkgconfig/|/libcairn\.so$' >"$T/leak" &&
    fail "development files in the runtime package: $(cat "$T/leak")"
ok "runtime and development files each in their own package"

R=$T/root
dpkg -x "$RT" "$R" || fail "dpkg -x $RT"
dpkg -x "$DEV" "$R" || fail "dpkg -x $DEV"
D=$(dirname "$(find "$R" -path '*/bin/cairnd')")
P=$(dirname "$D") # the package's prefix, inside the scratch root
CONF=$(find "$R" -path '*/etc/cairn/cairn.yaml')
PLUGINS=$(find "$R" -type d -path '*/cairn/plugins')
grep -q "cairnd -c ${CONF#"$R"}" "$P/lib/systemd/system/cairnd.service" ||
    fail "the unit does not start cairnd with ${CONF#"$R"}"
"$D/cairnd" --check -c "$CONF" -P "$PLUGINS" >"$T/check.out" 2>&1 ||
    fail "packaged cairnd rejects the packaged config: $(cat "$T/check.out")"
ok "the packaged cairnd accepts the packaged config"

"$CMAKE_COMMAND" -S "$SRC_DIR/examples/hello-plugin" -B "$T/oot" \
    -DCMAKE_PREFIX_PATH="$P" -DCMAKE_C_COMPILER="$C_COMPILER" \
    >"$T/oot.log" 2>&1 || fail "configure: $(tail -20 "$T/oot.log")"
grep -q "cairn_DIR:PATH=$R/" "$T/oot/CMakeCache.txt" ||
    fail "find_package(cairn) did not find the scratch root's package"
"$CMAKE_COMMAND" --build "$T/oot" >>"$T/oot.log" 2>&1 ||
    fail "build: $(tail -20 "$T/oot.log")"
[ -f "$T/oot/hello.so" ] || fail "no hello.so"
ok "examples/hello-plugin builds against the unpacked cairn-dev"

# Run the packaged daemon (it finds the packaged libcairn through its
# $ORIGIN rpath) with the new plugin and a packaged one.
CAIRND=$D/cairnd
CAIRN=$D/cairn
config "$T/c.yaml" <<EOF2
plugins:
  - name: hi
    path: $T/oot/hello.so
    config: {greeting: hej}
  - name: tally
    path: counter.so
EOF2
PLUGIN_DIR=$PLUGINS
start "$T/c.yaml"
[ "$(cli call hi.greet world)" = "hej, world" ] || fail "hi.greet"
cli plugins | grep -q '^tally .*running' || fail "packaged counter.so not running"
ok "the packaged cairnd runs the out-of-tree plugin and a packaged one"
stop
