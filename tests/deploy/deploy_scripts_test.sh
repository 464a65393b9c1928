#!/usr/bin/env bash
# The install scripts touch only what they own (issue 11):
#   - no deploy script stops, disables, masks or kills a service (pkill, killall, systemctl
#     stop/disable/mask, update-rc.d ... disable, service ... stop);
#   - install-deps.sh installs build and runtime packages only, and the test tools only with
#     --test; quickstart.sh and build-deb.sh call it without --test, test.sh with --test;
#   - while it installs, a policy-rc.d refuses service starts, and it is gone afterwards; an
#     administrator's own policy-rc.d is neither replaced nor removed.
# install-deps.sh runs for real against fakes of apt-get, dpkg-query and id put first in PATH: the
# machine's packages and services are never touched.
#
# Usage: tests/deploy/deploy_scripts_test.sh SOURCE_DIR
set -euo pipefail

src=$(realpath "$1")
tmp=$(mktemp -d /tmp/lanrelay-deploy-scripts.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# --- what the scripts say ----------------------------------------------------------------------
forbidden='(^|[^[:alnum:]_-])(pkill|killall)([^[:alnum:]_-]|$)|systemctl[^#]*[[:space:]](stop|disable|mask|kill)([^[:alnum:]_-]|$)|update-rc\.d[^#]*[[:space:]](disable|remove|stop)|(^|[^[:alnum:]_-])service[[:space:]]+[[:alnum:]_.-]+[[:space:]]+stop'
for script in "$src"/deploy/*.sh; do
  # Comment lines may name what is not done.
  if grep -nE "$forbidden" "$script" | grep -vE '^[0-9]+:[[:space:]]*#'; then
    fail "$(basename "$script") stops, disables or kills a service (lines above)"
  fi
done
call_of() {  # the install-deps.sh line of a script
  grep -E '^[^#]*install-deps\.sh' "$src/deploy/$1" || true
}
[[ $(call_of quickstart.sh) =~ install-deps\.sh[[:space:]]*$ ]] ||
  fail "quickstart.sh must call install-deps.sh without --test: '$(call_of quickstart.sh)'"
[[ $(call_of build-deb.sh) =~ install-deps\.sh[[:space:]]*$ ]] ||
  fail "build-deb.sh must call install-deps.sh without --test: '$(call_of build-deb.sh)'"
[[ $(call_of test.sh) =~ install-deps\.sh[[:space:]]+--test ]] ||
  fail "test.sh must call install-deps.sh --test: '$(call_of test.sh)'"

# --- what install-deps.sh does, against fakes --------------------------------------------------
fake=$tmp/bin
mkdir -p "$fake"
policy=$tmp/policy-rc.d
# dpkg-query: nothing is installed, except what FAKE_INSTALLED lists.
cat >"$fake/dpkg-query" <<'EOF'
#!/bin/sh
for p in $FAKE_INSTALLED; do
  if [ "$p" = "$3" ]; then echo "install ok installed"; exit 0; fi
done
exit 1
EOF
# apt-get: records each call, and whether service starts were refused while it installed.
cat >"$fake/apt-get" <<'EOF'
#!/bin/sh
echo "apt-get $*" >>"$FAKE_LOG"
case " $* " in
  *" install "*)
    status=none
    if [ -x "$LANRELAY_POLICY_RC_D" ]; then
      "$LANRELAY_POLICY_RC_D" nginx start
      status=$?
    fi
    echo "policy-rc.d says: $status" >>"$FAKE_LOG"
    ;;
esac
EOF
printf '#!/bin/sh\necho 0\n' >"$fake/id"
for tool in systemctl pkill killall update-rc.d service invoke-rc.d deb-systemd-helper; do
  printf '#!/bin/sh\necho "%s $*" >>"$FAKE_LOG"\n' "$tool" >"$fake/$tool"
done
chmod +x "$fake"/*

run_install() {  # run_install LOG [ARGS...]: install-deps.sh with the fakes; its exit status
  local log=$1
  shift
  : >"$log"
  FAKE_LOG=$log LANRELAY_POLICY_RC_D=$policy PATH="$fake:$PATH" \
    bash "$src/deploy/install-deps.sh" "$@" >"$log.out" 2>&1
}

test_tools=(nginx-light chromium dante-server tinyproxy-bin wrk clang-14 squid-openssl krb5-kdc krb5-admin-server krb5-user prometheus)
run_install "$tmp/default.log" || fail "install-deps.sh failed: $(cat "$tmp/default.log.out")"
installed=$(grep '^apt-get .*install' "$tmp/default.log" || true)
[[ -n $installed ]] || fail "install-deps.sh installed nothing: $(cat "$tmp/default.log")"
for p in cmake libboost1.81-dev duktape-dev libssl-dev libsystemd-dev; do
  [[ " $installed " == *" $p "* ]] || fail "install-deps.sh does not install $p"
done
for p in "${test_tools[@]}"; do
  [[ " $installed " == *" $p "* ]] && fail "install-deps.sh without --test installs $p"
done

run_install "$tmp/test.log" --test || fail "install-deps.sh --test failed: $(cat "$tmp/test.log.out")"
installed=$(grep '^apt-get .*install' "$tmp/test.log" || true)
for p in "${test_tools[@]}" cmake; do
  [[ " $installed " == *" $p "* ]] || fail "install-deps.sh --test does not install $p"
done
for log in "$tmp/default.log" "$tmp/test.log"; do
  grep -q '^policy-rc.d says: 101$' "$log" ||
    fail "service starts were not refused during the installation ($(basename "$log")): $(cat "$log")"
  grep -Eq '^(systemctl|pkill|killall|update-rc.d|service|invoke-rc.d|deb-systemd-helper) ' "$log" &&
    fail "install-deps.sh ran a service tool: $(grep -E '^(systemctl|pkill|killall|update-rc.d|service|invoke-rc.d|deb-systemd-helper) ' "$log")"
done
[[ -e $policy ]] && fail "install-deps.sh left its policy-rc.d behind"

# An administrator's policy-rc.d is kept, byte for byte.
printf '#!/bin/sh\n# the administrator'"'"'s\nexit 0\n' >"$policy"
chmod 0755 "$policy"
cp "$policy" "$tmp/policy.saved"
run_install "$tmp/own.log" --test || fail "install-deps.sh failed with a policy-rc.d present"
cmp -s "$policy" "$tmp/policy.saved" || fail "install-deps.sh changed or removed an existing policy-rc.d"

# Nothing to do: no apt-get at all.
FAKE_INSTALLED="$(sed -n '/^build_packages=(/,/^)/p;/^test_packages=(/,/^)/p' \
  "$src/deploy/install-deps.sh" | grep -v '=(\|^)' | tr '\n' ' ')"
export FAKE_INSTALLED
run_install "$tmp/none.log" --test || fail "install-deps.sh failed with everything installed"
grep -q '^apt-get' "$tmp/none.log" && fail "install-deps.sh ran apt-get with everything installed"
unset FAKE_INSTALLED

# Unknown arguments are refused.
run_install "$tmp/bad.log" --tests && fail "install-deps.sh accepted an unknown argument"

if ((failures)); then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "deploy scripts: ok"
