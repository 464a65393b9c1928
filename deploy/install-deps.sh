#!/usr/bin/env bash
# Installs the Debian 12 packages lanrelay needs.
#
# Usage: deploy/install-deps.sh          what building and running lanrelay needs (quickstart.sh,
#                                        build-deb.sh): compilers, libraries, packaging tools
#        deploy/install-deps.sh --test   the same, plus what the test suite and the benchmarks
#                                        run (test.sh): nginx, Chromium, Dante, tinyproxy, wrk,
#                                        promtool (prometheus), ...
#
# It touches only what it installs: packages already present are left alone, and no service is
# stopped, disabled or killed. Test tools whose packages would start a system service (nginx,
# danted, squid, krb5-kdc, krb5-admin-server, prometheus) are installed with service starts refused
# for that one apt-get run (a policy-rc.d that exists only during it; an administrator's own
# policy-rc.d is kept as it is). The tests run their own instances of these programs, with their
# own configurations and ports; of prometheus the suite runs only promtool (the alert rules), and
# no script of ours starts or stops the package's own service.
#
# LANRELAY_POLICY_RC_D overrides /usr/sbin/policy-rc.d (for tests/deploy/deploy_scripts_test.sh).
set -euo pipefail

with_tests=0
for arg in "$@"; do
  case $arg in
    --test) with_tests=1 ;;
    *)
      echo "install-deps: unknown argument '$arg' (usage: install-deps.sh [--test])" >&2
      exit 2
      ;;
  esac
done

# Building (the release preset configures the unit tests too, hence GoogleTest) and packaging.
build_packages=(
  build-essential cmake ninja-build pkg-config git ccache
  libboost1.81-dev libboost-url1.81-dev libboost-json1.81-dev libboost-system1.81-dev
  libssl-dev libcurl4-openssl-dev libspdlog-dev libfmt-dev libtomlplusplus-dev libcli11-dev libsystemd-dev
  duktape-dev libc-ares-dev libgtest-dev libgmock-dev
  dpkg-dev file adduser openssl
)
# The test suite, the fuzzers and the benchmarks: real servers, proxies and a browser. squid and
# the MIT Kerberos KDC (kdb5_util, kadmin.local, kinit) make the authenticating proxies of
# tests/support/squid_fixture.hpp; their services are not started (policy-rc.d below).
# squid-openssl is Debian's squid built with OpenSSL (the same /usr/sbin/squid and helpers), whose
# https_port the HTTPS-proxy tests need; it conflicts with the `squid` package (the GnuTLS
# build), which apt removes when it installs this one.
test_packages=(
  clang-14 libclang-rt-14-dev
  iproute2 nftables curl procps wget systemd
  nginx-light wrk
  python3-prometheus-client chromium fonts-dejavu-core
  dante-server tinyproxy-bin
  squid-openssl krb5-kdc krb5-admin-server krb5-user
  prometheus
  dnsmasq-base
)

packages=("${build_packages[@]}")
if ((with_tests)); then
  packages+=("${test_packages[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages (${missing[*]}); run this script as root" >&2
  exit 1
fi

# No service starts during this installation (invoke-rc.d and deb-systemd-invoke ask
# policy-rc.d; 101: action forbidden). Only a policy-rc.d this script wrote is removed.
policy=${LANRELAY_POLICY_RC_D:-/usr/sbin/policy-rc.d}
own_policy=0
remove_policy() {
  if ((own_policy)); then
    rm -f "$policy"
  fi
}
trap remove_policy EXIT
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\n# Written by lanrelay deploy/install-deps.sh for one apt-get run.\nexit 101\n' \
    >"$policy"
  chmod 0755 "$policy"
  own_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
