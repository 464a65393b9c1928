#!/usr/bin/env bash
# Builds the Debian package from the release build: build/package/lanrelay_<version>_<arch>.deb
# (or into the directory given as $1). Install it on a Debian 12 machine with
#   apt install ./lanrelay_<version>_<arch>.deb
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-build/package}")

bash deploy/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target lanrelay_package_binaries
mkdir -p "$out"
cpack --config build/release/CPackConfig.cmake -B "$out" >/dev/null
rm -rf "$out/_CPack_Packages"
ls "$out"/lanrelay_*.deb
