#!/usr/bin/env bash
# Installs every Debian package that building, testing and benchmarking keel needs.
# Safe to run more than once; skips apt entirely when everything is already present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  g++ clang clang-format
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libtomlplusplus-dev
  libssl-dev openssl
  libedit-dev  # keel ctl's console: line editing, history, completion
  tmux         # tests/e2e/console_test.cc drives the console in it
  procps iproute2 python3
  haproxy  # tests/e2e/haproxy_test.cc runs its own; the package's system service is not used
  libasio-dev libevent-dev libuv1-dev gnuplot-nox util-linux
  liburing-dev  # bench/peers/uring_echo: the minimal io_uring echo keel is compared with
  # tests/browser: the dashboard in headless Chromium, driven by Selenium under /usr/bin/python3
  chromium chromium-driver python3-selenium
  prometheus  # promtool: tests/e2e/http_test.cc checks /metrics; the system service is not used
  socat netcat-openbsd  # bench/files_transfer: the plain pipes keel get/put are compared with
  libhiredis-dev  # the cluster backplane's Redis client (src/cluster/)
  redis-server    # the cluster tests run their own on a Unix socket; the system service is not used
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
