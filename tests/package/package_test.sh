#!/usr/bin/env bash
# Package test: builds the .deb from a release build tree, checks its contents, control files and
# systemd units (systemd-analyze verify and security), installs it on this machine (dpkg -i) and
# checks the user, owners, modes and conffiles; then runs the unit's ExecStart as the unit's user
# inside a private network namespace (the packaged configuration has discovery on: it answers
# only there), checks /-/healthz, an item added by `lanrelay cache add` as root and served by the
# daemon, a reload (SIGHUP) and a clean stop; finally purges the package and checks that
# everything it created is gone.
#
# Usage: tests/package/package_test.sh BUILD_DIR    (as root; exit status 77: skipped)
# PID 1 of a container is usually not systemd, so the service is not started by systemctl here.
set -euo pipefail

build=$(realpath "$1")
src=$(cd "$(dirname "$0")/../.." && pwd)
user=lanrelay
port=4127
started=$(date +%s)

if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: needs root (dpkg -i, a system user, a network namespace)"
  exit 77
fi
if dpkg-query -W -f='${Status}' lanrelay 2>/dev/null | grep -Eq "installed|config-files"; then
  echo "SKIP: a lanrelay package is installed on this machine; this test would purge it"
  exit 77
fi
proxy_user=lanrelay-proxy
for u in "$user" "$proxy_user"; do
  if getent passwd "$u" >/dev/null || getent group "$u" >/dev/null; then
    echo "FAIL: a '$u' user or group exists without the package; remove it (deluser --system $u)"
    exit 1
  fi
done

tmp=$(mktemp -d /tmp/lanrelay-package.XXXXXX)
ns="lanrelay-pkg-$$"
daemon_pid=""
installed=0
# Directories the package owns that something else (lanrelayd run as root on its defaults, say)
# left on this machine: kept aside during the test and put back afterwards.
saved=()

cleanup() {
  local status=$?
  if [[ -n $daemon_pid ]] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -KILL "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  ip netns del "$ns" 2>/dev/null || true
  if ((installed)); then
    dpkg --purge lanrelay >/dev/null 2>&1 || true
  fi
  for dir in "${saved[@]}"; do
    rm -rf "$dir"
    mv "$tmp/saved/$(basename "$dir")" "$dir"
  done
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  if [[ -f $tmp/daemon.log ]]; then
    echo "--- lanrelayd output:" >&2
    cat "$tmp/daemon.log" >&2
  fi
  exit 1
}

expect_eq() {  # expect_eq WHAT ACTUAL EXPECTED
  [[ $2 == "$3" ]] || fail "$1: '$2', expected '$3'"
}

mkdir -p "$tmp/saved"
for dir in /var/lib/lanrelay /var/lib/proxyhelperd /var/cache/lanrelay /etc/lanrelay; do
  if [[ -e $dir ]]; then
    mv "$dir" "$tmp/saved/"
    saved+=("$dir")
  fi
done

# --- build and inspect -------------------------------------------------------------------------
cpack --config "$build/CPackConfig.cmake" -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log"; fail "cpack failed"; }
deb=$(ls "$tmp"/pkg/lanrelay_*_"$(dpkg --print-architecture)".deb)
version=$(dpkg-deb -f "$deb" Version)
expect_eq "package file name" "$(basename "$deb")" "lanrelay_${version}_$(dpkg --print-architecture).deb"
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for path in ./usr/sbin/lanrelayd ./usr/bin/lanrelay ./usr/lib/systemd/system/lanrelayd.service \
    ./etc/lanrelay/lanrelayd.toml ./usr/share/doc/lanrelay/copyright \
    ./usr/share/doc/lanrelay/operations.md ./usr/share/doc/lanrelay/README.md; do
  grep -qx "$path" <<<"$contents" || fail "$path is not in the package"
done
if [[ -x $build/proxyhelper/proxyhelperd ]]; then
  for path in ./usr/sbin/proxyhelperd ./usr/lib/systemd/system/proxyhelperd.service; do
    grep -qx "$path" <<<"$contents" || fail "$path is not in the package"
  done
fi
dpkg-deb -e "$deb" "$tmp/control"
grep -qx /etc/lanrelay/lanrelayd.toml "$tmp/control/conffiles" ||
  fail "lanrelayd.toml is not a conffile"
for script in postinst prerm postrm; do
  [[ -x $tmp/control/$script ]] || fail "$script is missing or not executable"
done
depends=$(dpkg-deb -f "$deb" Depends)
for dep in adduser libsystemd0 libssl3; do
  grep -q "$dep" <<<"$depends" || fail "Depends lacks $dep: $depends"
done

# Both units, as shipped, rate "OK" or better (exposure at most 4.9).
for unit in "$src"/deploy/systemd/*.service; do
  systemd-analyze security --offline=true --threshold=49 "$unit" >"$tmp/security.log" 2>&1 ||
    { tail -n 3 "$tmp/security.log"; fail "$(basename "$unit") is exposed beyond 4.9"; }
  echo "$(basename "$unit"): $(tail -n 1 "$tmp/security.log" | sed 's/.*: //')"
done

# --- install -----------------------------------------------------------------------------------
installed=1
dpkg -i "$deb" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -i failed"; }
expect_eq "package status" "$(dpkg-query -W -f='${Status}' lanrelay)" "install ok installed"
grep -q "/etc/lanrelay/lanrelayd.toml" <<<"$(dpkg-query -W -f='${Conffiles}' lanrelay)" ||
  fail "dpkg does not know lanrelayd.toml as a conffile"

IFS=: read -r _ _ uid gid _ home shell <<<"$(getent passwd "$user")"
((uid > 0 && uid < 1000)) || fail "$user is not a system user (uid $uid)"
expect_eq "$user's group" "$(getent group "$gid" | cut -d: -f1)" "$user"
expect_eq "$user's home" "$home" /var/lib/lanrelay
expect_eq "$user's shell" "$shell" /usr/sbin/nologin
expect_eq "/var/lib/lanrelay" "$(stat -c '%U:%G %a' /var/lib/lanrelay)" "$user:$user 750"
expect_eq "/etc/lanrelay" "$(stat -c '%U:%G %a' /etc/lanrelay)" "root:root 755"
expect_eq "lanrelayd.toml" "$(stat -c '%U:%G %a' /etc/lanrelay/lanrelayd.toml)" "root:$user 640"

# Each daemon its own island: proxyhelperd has its own user and state; neither user reads the
# other's configuration or state, and each unit hides the other's state altogether.
if [[ -x /usr/sbin/proxyhelperd ]]; then
  IFS=: read -r _ _ puid pgid _ phome _ <<<"$(getent passwd "$proxy_user")"
  ((puid > 0 && puid < 1000 && puid != uid)) || fail "$proxy_user is not a system user of its own"
  expect_eq "$proxy_user's group" "$(getent group "$pgid" | cut -d: -f1)" "$proxy_user"
  expect_eq "$proxy_user's home" "$phome" /var/lib/proxyhelperd
  expect_eq "/var/lib/proxyhelperd" "$(stat -c '%U:%G %a' /var/lib/proxyhelperd)" \
    "$proxy_user:$proxy_user 750"
  expect_eq "proxyhelperd.toml" "$(stat -c '%U:%G %a' /etc/lanrelay/proxyhelperd.toml)" \
    "root:$proxy_user 640"
  punit=/usr/lib/systemd/system/proxyhelperd.service
  expect_eq "proxyhelperd unit user" "$(sed -n 's/^User=//p' "$punit")" "$proxy_user"
  grep -q '^InaccessiblePaths=.*/var/lib/lanrelay' "$punit" ||
    fail "proxyhelperd.service does not hide /var/lib/lanrelay"
  grep -q '^InaccessiblePaths=.*/var/lib/proxyhelperd' /usr/lib/systemd/system/lanrelayd.service ||
    fail "lanrelayd.service does not hide /var/lib/proxyhelperd"
  for unit_file in /usr/lib/systemd/system/{lanrelayd,proxyhelperd}.service; do
    grep -q '^MemoryMax=' "$unit_file" && grep -q '^TasksMax=' "$unit_file" ||
      fail "$unit_file sets no MemoryMax= or TasksMax="
  done
  setpriv --reuid="$proxy_user" --regid="$proxy_user" --init-groups --no-new-privs -- \
    cat /etc/lanrelay/lanrelayd.toml >/dev/null 2>&1 &&
    fail "$proxy_user can read lanrelayd.toml"
  setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs -- \
    cat /etc/lanrelay/proxyhelperd.toml >/dev/null 2>&1 && fail "$user can read proxyhelperd.toml"
  setpriv --reuid="$proxy_user" --regid="$proxy_user" --init-groups --no-new-privs -- \
    ls /var/lib/lanrelay >/dev/null 2>&1 && fail "$proxy_user can list /var/lib/lanrelay"
  setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs -- \
    ls /var/lib/proxyhelperd >/dev/null 2>&1 && fail "$user can list /var/lib/proxyhelperd"
fi
[[ -L /etc/systemd/system/multi-user.target.wants/lanrelayd.service ]] ||
  fail "lanrelayd.service is not enabled"

# Silent when a unit is valid and its ExecStart exists.
for unit in /usr/lib/systemd/system/{lanrelayd,proxyhelperd}.service; do
  [[ -f $unit ]] || continue
  if ! systemd-analyze verify "$unit" >"$tmp/verify.log" 2>&1 || grep -q . "$tmp/verify.log"; then
    cat "$tmp/verify.log"
    fail "systemd-analyze verify reports problems in $unit"
  fi
done
unit=/usr/lib/systemd/system/lanrelayd.service
expect_eq "unit user" "$(sed -n 's/^User=//p' "$unit")" "$user"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
read -r -a command <<<"$exec_start"
as_user=(setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs --)
"${as_user[@]}" "${command[0]}" --check-config /etc/lanrelay/lanrelayd.toml >/dev/null ||
  fail "the service user cannot read or validate /etc/lanrelay/lanrelayd.toml"

# A site key generated by root before the first start: the daemon (not root) must read it.
lanrelay key generate --out /var/lib/lanrelay/site.key >/dev/null || fail "lanrelay key generate"
expect_eq "site.key" "$(stat -c '%U %a' /var/lib/lanrelay/site.key)" "$user 600"

# --- run the unit's command as its user, in a network namespace of its own ---------------------
ip netns add "$ns"
ip -n "$ns" link set dev lo up
mkfifo "$tmp/stdout"
ip netns exec "$ns" "${as_user[@]}" "${command[@]}" >"$tmp/stdout" 2>"$tmp/daemon.log" &
daemon_pid=$!
exec 3<"$tmp/stdout"
# stdout: "https on ADDR:PORT certificate sha256 HEX", then "listening on ADDR:PORT".
read -r -t 15 -u 3 https_line || fail "lanrelayd did not start listening within 15 s"
[[ $https_line == "https on "*":4128 certificate sha256 "* ]] || fail "unexpected first line: $https_line"
read -r -t 15 -u 3 line || fail "lanrelayd did not start listening within 15 s"
[[ $line == "listening on "*":$port" ]] || fail "unexpected second line: $line"
expect_eq "daemon user" "$(ps -o user= -p "$daemon_pid")" "$user"
in_ns=(ip netns exec "$ns")
healthz=$("${in_ns[@]}" curl -fsS --max-time 5 "http://127.0.0.1:$port/-/healthz") ||
  fail "/-/healthz does not answer"
expect_eq "/-/healthz" "$healthz" "ok"
# HTTPS with the certificate generated at first start, owned by the daemon and private.
https_healthz=$("${in_ns[@]}" curl -fsSk --max-time 5 "https://127.0.0.1:4128/-/healthz") ||
  fail "/-/healthz does not answer over HTTPS"
expect_eq "/-/healthz over HTTPS" "$https_healthz" "ok"
expect_eq "tls.key" "$(stat -c '%U %a' /var/lib/lanrelay/tls.key)" "$user 600"

"${in_ns[@]}" curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$port/-/catalog.signed" ||
  fail "no signed catalog: the daemon could not read its site key"

# An administrator adds an item as root; the daemon, not root, serves it.
head -c 300000 /dev/urandom >"$tmp/agent.msi"
lanrelay cache add "$tmp/agent.msi" --config /etc/lanrelay/lanrelayd.toml --kind installer \
  --name agent-x64 --version 14.0.1 >/dev/null || fail "lanrelay cache add as root failed"
not_owned=$(find /var/lib/lanrelay ! -user "$user" -print)
[[ -z $not_owned ]] || fail "files in /var/lib/lanrelay not owned by $user: $not_owned"
"${in_ns[@]}" curl -fsS --max-time 10 -o "$tmp/served" \
  "http://127.0.0.1:$port/cache/installer/agent-x64/14.0.1" || fail "the added item is not served"
cmp -s "$tmp/agent.msi" "$tmp/served" || fail "the served item differs from the added file"

# A reload applies a new peer cap and log level.
sed -i -e 's/^max_peers = 10$/max_peers = 3/' -e 's/^level = "info"$/level = "debug"/' \
  /etc/lanrelay/lanrelayd.toml
kill -HUP "$daemon_pid"
timeout 10 grep -q -m1 "event=reloaded applied=peers.max_peers,log.level" \
  <(tail --pid="$daemon_pid" -n +1 -f "$tmp/daemon.log") ||
  fail "SIGHUP did not reload peers.max_peers and log.level"
"${in_ns[@]}" curl -fsS --max-time 5 "http://127.0.0.1:$port/-/stats" | grep -q '"max_peers":3' ||
  fail "/-/stats does not show max_peers 3 after the reload"

kill -TERM "$daemon_pid"
status=0
wait "$daemon_pid" || status=$?
daemon_pid=""
exec 3<&-
expect_eq "lanrelayd exit status after SIGTERM" "$status" 0

# --- purge -------------------------------------------------------------------------------------
ip netns del "$ns"
dpkg --purge lanrelay >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg --purge failed"; }
installed=0
if dpkg-query -W -f='${Status}' lanrelay 2>/dev/null | grep -Eq "installed|config-files"; then
  fail "dpkg still knows the package after purge"
fi
for u in "$user" "$proxy_user"; do
  getent passwd "$u" >/dev/null && fail "user $u is left after purge"
  getent group "$u" >/dev/null && fail "group $u is left after purge"
done
for path in /var/lib/lanrelay /var/lib/proxyhelperd /var/cache/lanrelay /etc/lanrelay \
    /usr/sbin/lanrelayd \
    /usr/bin/lanrelay "$unit" /usr/share/doc/lanrelay \
    /etc/systemd/system/multi-user.target.wants/lanrelayd.service \
    /var/lib/systemd/deb-systemd-helper-enabled/lanrelayd.service.dsh-also \
    /var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/lanrelayd.service; do
  [[ ! -e $path && ! -L $path ]] || fail "$path is left after purge"
done

echo "package test passed in $(($(date +%s) - started)) s: $(basename "$deb")"
