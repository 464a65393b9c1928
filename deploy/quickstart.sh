#!/usr/bin/env bash
# Installs the build dependencies (no test tools: install-deps.sh without --test), builds lanrelay
# and starts lanrelayd in the foreground on its embedded default configuration (no config file).
# Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target lanrelayd lanrelay
exec ./build/release/relay/lanrelayd "$@"
