#!/bin/sh
# install-deps.sh - installs the Debian packages cairn builds, tests and
# demos with.  Needs root, or sudo.  Safe to run again.
set -eu
PKGS="build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
      libnng-dev libcbor-dev libyaml-dev libcmocka-dev libsqlite3-dev
      binutils file libmosquitto-dev mosquitto mosquitto-clients openssl
      curl wrk python3 librabbitmq-dev rabbitmq-server faketime sqlite3"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
# The tests start RabbitMQ themselves (own ports, node, epmd); the
# package's system service is not needed and must not hold port 5672.
case "$missing" in
*rabbitmq-server*)
    if command -v systemctl >/dev/null 2>&1; then
        $SUDO systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
    fi
    ;;
esac
