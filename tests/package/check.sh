#!/usr/bin/env bash
# Installs the build tree into a temporary prefix and builds tests/package (the library example)
# against it with find_package(keel): proves the installed headers and CMake package config.
set -euo pipefail
build_dir=$1
source_dir=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
cmake -S "$source_dir/tests/package" -B "$work/build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DKEEL_EXAMPLES_DIR="$source_dir/examples" >/dev/null
cmake --build "$work/build" >/dev/null
test -x "$work/build/echo_server"
test -x "$work/build/udp_echo"
echo "find_package(keel) consumer built"
