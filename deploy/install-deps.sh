#!/usr/bin/env bash
# Installs every Debian 12 package lanrelay needs to build, test and benchmark.
# Idempotent: packages already present are left alone.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ccache
  libboost1.81-dev libboost-url1.81-dev libboost-json1.81-dev libboost-system1.81-dev
  libssl-dev libspdlog-dev libfmt-dev libtomlplusplus-dev libcli11-dev libsystemd-dev
  libgtest-dev libgmock-dev
  clang-14 libclang-rt-14-dev
  iproute2 nftables curl procps
  nginx-light wrk wget
  python3-prometheus-client chromium fonts-dejavu-core duktape-dev
  dpkg-dev file systemd adduser
  dante-server tinyproxy-bin openssl
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages (${missing[*]}); run this script as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The nginx package starts a system instance on port 80; lanrelay's benchmark runs its own.
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now nginx >/dev/null 2>&1 || true
  fi
  pkill -x nginx 2>/dev/null || true
fi
# Tests run their own SOCKS5 proxy (danted) with their own configuration; the package's system
# service is never wanted (its default configuration would not start anyway).
if dpkg-query -W -f='${Status}' dante-server 2>/dev/null | grep -q "install ok installed"; then
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now danted >/dev/null 2>&1 || true
  fi
  update-rc.d danted disable >/dev/null 2>&1 || true
fi
