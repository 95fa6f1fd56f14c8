#!/bin/sh
# run.sh - the one command that sets up and runs cairn's tests on a fresh
# Debian machine: installs the packages, builds the `dev` preset, runs
# every test but the benchmarks and fuzzers.  Extra arguments go to ctest
# (e.g. tests/run.sh -L unit).
set -eu
cd "$(dirname "$0")/.."
sh tests/install-deps.sh
cmake --preset dev >/dev/null
cmake --build --preset dev
ctest --preset dev -j2 "$@"
