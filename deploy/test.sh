#!/usr/bin/env bash
# Installs dependencies with the test tools (install-deps.sh --test), builds lanrelay and runs
# the whole test suite: a short run of every fuzz target, then unit, integration and segment
# tests (network namespaces; needs root).
# Usage: deploy/test.sh            (as root on Debian 12)
#        FUZZ_SECONDS=0 deploy/test.sh   to skip fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh --test

fuzz_seconds=${FUZZ_SECONDS:-20}
if ((fuzz_seconds > 0)); then
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz -j "$(nproc)"
  shopt -s nullglob
  for fuzzer in build/fuzz/tests/fuzz/*_fuzz; do
    name=$(basename "$fuzzer" _fuzz)
    corpus=$(mktemp -d)
    cp tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null || true
    echo "fuzz: $name for ${fuzz_seconds}s"
    "$fuzzer" -max_total_time="$fuzz_seconds" -print_final_stats=1 "$corpus" 2>&1 | tail -n 3
    rm -rf "$corpus"
  done
fi

# The suite runs last, so that its summary closes the output.
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
ctest --preset release -j 2 --timeout 300
