# An out-of-tree plugin builds against the installed package, both with
# find_package(cairn) and with pkg-config, and runs in cairnd.
. "$(dirname "$0")/lib.sh"
: "${BUILD_DIR:?}" "${SRC_DIR:?}" "${CMAKE_COMMAND:?}" "${C_COMPILER:?}"

P="$T/prefix"
"$CMAKE_COMMAND" --install "$BUILD_DIR" --prefix "$P" >"$T/install.log" 2>&1 ||
    fail "install: $(tail -5 "$T/install.log")"
[ -f "$P/include/cairn/plugin.h" ] || fail "headers not installed"
ok "installed to a scratch prefix"

"$CMAKE_COMMAND" -S "$SRC_DIR/examples/hello-plugin" -B "$T/oot" \
    -DCMAKE_PREFIX_PATH="$P" -DCMAKE_C_COMPILER="$C_COMPILER" \
    >"$T/oot.log" 2>&1 || fail "configure: $(tail -20 "$T/oot.log")"
"$CMAKE_COMMAND" --build "$T/oot" >>"$T/oot.log" 2>&1 ||
    fail "build: $(tail -20 "$T/oot.log")"
[ -f "$T/oot/hello.so" ] || fail "no hello.so"
ok "find_package(cairn) + cairn_add_plugin() build examples/hello-plugin"

# Only the ABI entry is exported: hidden visibility by default.
exported=$(nm -D --defined-only "$T/oot/hello.so" | awk '$2 == "T" {print $3}')
[ "$exported" = "cairn_plugin_v1" ] || fail "exports: $exported"
ok "the plugin exports only cairn_plugin_v1"

PKG_CONFIG_PATH="$(dirname "$(find "$P" -name cairn.pc)")"
export PKG_CONFIG_PATH
"$C_COMPILER" -shared -fPIC -fvisibility=hidden -o "$T/hello-pc.so" \
    "$SRC_DIR/examples/hello-plugin/hello.c" $(pkg-config --cflags --libs cairn) ||
    fail "pkg-config build"
ok "pkg-config cairn builds the same plugin"

config "$T/c.yaml" <<EOF2
plugins:
  - name: hi
    path: $T/oot/hello.so
    config: {greeting: hej}
  - name: hi2
    path: $T/hello-pc.so
EOF2
start "$T/c.yaml"
[ "$(cli call hi.greet world)" = "hej, world" ] || fail "hi.greet"
[ "$(cli call hi2.greet you)" = "hello, you" ] || fail "hi2.greet"
ok "both out-of-tree builds load and serve"
stop
