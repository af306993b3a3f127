#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang, ASan and UBSan (in build/fuzz: only
# libkeel and the targets) and runs each for FUZZ_SECONDS (default 60), FUZZ_JOBS (default 2) at
# a time, on a scratch copy of its seeds in tests/fuzz/corpus/NAME (the committed corpus is
# never written). Exits 1 on any finding, printing the reproducer's path and how to replay it.
#   scripts/fuzz.sh            every target listed in tests/fuzz/CMakeLists.txt
#   scripts/fuzz.sh cidr ...   only these
# Environment: FUZZ_SECONDS, FUZZ_JOBS, FUZZ_BUILD_DIR (default build/fuzz).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-2}
build=$(realpath -m "${FUZZ_BUILD_DIR:-$root/build/fuzz}")

# One target (run by xargs below): NAME SCRATCH_DIR.
if [ "${1:-}" = "--run-one" ]; then
  name=$2
  work=$3/$name
  seeds=$root/tests/fuzz/corpus/$name
  findings=$build/findings/$name
  if [ -z "$(ls -A "$seeds" 2>/dev/null)" ]; then
    echo "fuzz: $name: no seeds in tests/fuzz/corpus/$name (every target needs some)"
    exit 1
  fi
  mkdir -p "$work/corpus" "$findings"
  cp -r "$seeds"/. "$work/corpus/"
  start=$(date +%s)
  status=0
  # -timeout: an input that takes 10 s is a finding (a hang); -rss_limit_mb: so is 1 GiB.
  UBSAN_OPTIONS=print_stacktrace=1 "$build/tests/fuzz/${name}_fuzz" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$findings/" "$work/corpus" >"$work/log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -n 1 || true)
  if [ "$status" -eq 0 ]; then
    echo "fuzz: $name: ok, ${runs:-?} runs in $(($(date +%s) - start)) s, ${cov:-cov: ?}"
    exit 0
  fi
  echo "fuzz: $name: FINDING (exit $status); the end of its log:"
  tail -n 40 "$work/log" | sed 's/^/  | /'
  reproducer=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$work/log" | tail -n 1)
  if [ -n "$reproducer" ]; then
    echo "fuzz: $name: reproducer $reproducer"
    echo "fuzz: $name: replay with $build/tests/fuzz/${name}_fuzz $reproducer"
  fi
  exit 1
fi

CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKEEL_WERROR=ON -DKEEL_BUILD_FUZZ=ON -DKEEL_BUILD_TESTS=OFF -DKEEL_BUILD_APP=OFF \
  -DKEEL_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j "$jobs" --target keel_fuzzers

if [ $# -gt 0 ]; then
  names=("$@")
else
  mapfile -t names <"$build/tests/fuzz/fuzzers.txt"
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/keel-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
echo "fuzz: ${#names[@]} targets, $seconds s each, $jobs at a time"
if printf '%s\n' "${names[@]}" | xargs -P "$jobs" -I{} bash "$0" --run-one {} "$scratch"; then
  echo "fuzz: no findings"
else
  echo "fuzz: FAILED (reproducers are kept under $build/findings)"
  exit 1
fi
