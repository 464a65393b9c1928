#!/usr/bin/env bash
# Serves the same files from lanrelayd and from Debian's nginx (sendfile on) on loopback, under the
# same wrk load, and prints requests/s, MiB/s and the ratio lanrelayd/nginx for each row, plus
# lanrelayd's resident memory idle and with 1000 open idle keep-alive connections.
#
# Usage: tests/bench/http_bench.sh [BUILD_DIR]     (default: build/release; build it first)
# Environment: BENCH_SECONDS (default 10) per wrk run.
# Everything runs on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."

build=${1:-build/release}
seconds=${BENCH_SECONDS:-10}
relayd=$build/relay/lanrelayd
cli=$build/cli/lanrelay
idle=$build/tests/bench/bench_idle_connections
for tool in "$relayd" "$cli" "$idle"; do
  [[ -x $tool ]] || { echo "http_bench: $tool is missing; build the release preset first" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "http_bench: wrk is missing (deploy/install-deps.sh)" >&2; exit 1; }
command -v nginx >/dev/null || { echo "http_bench: nginx is missing (deploy/install-deps.sh)" >&2; exit 1; }

work=$(mktemp -d /tmp/lanrelay-bench.XXXXXX)
relay_pid=""
nginx_pid=""
cleanup() {
  [[ -n $relay_pid ]] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
  [[ -n $nginx_pid ]] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/files" "$work/state"
head -c $((1 << 20)) /dev/urandom >"$work/files/one-mib.bin"
head -c $((256 << 20)) /dev/urandom >"$work/files/big.bin"

threads=$(nproc)
cat >"$work/relay.toml" <<CONF
[state]
dir = "$work/state"
[cache]
max_size = 0
[http]
listen = "127.0.0.1"
port = 0
max_connections = 5000
threads = $threads
[peers]
# Every wrk connection comes from 127.0.0.1: the per-client share (default 2) would answer all
# but two of them 503. nginx has no such limit; lift both for the measurement.
max_peers = 100000
max_peers_per_client = 100000
[https]
# HTTP only; and no clash with anything on 4128.
enabled = false
[discovery]
# The benchmark measures HTTP only, outside any test namespace: no discovery sockets, and above
# all no IPv6 group membership (MLD reports) on the machine's real interfaces.
enabled = false
[log]
level = "warn"
CONF
"$cli" cache add --config "$work/relay.toml" "$work/files/one-mib.bin" --kind file --name one-mib --version 1 >/dev/null
"$cli" cache add --config "$work/relay.toml" "$work/files/big.bin" --kind file --name big --version 1 >/dev/null

"$relayd" --config "$work/relay.toml" >"$work/relay.out" 2>&1 &
relay_pid=$!
relay_port=""
for _ in $(seq 100); do
  relay_port=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\).*/\1/p' "$work/relay.out" | head -n 1)
  [[ -n $relay_port ]] && break
  sleep 0.1
done
[[ -n $relay_port ]] || { echo "http_bench: lanrelayd did not start:" >&2; cat "$work/relay.out" >&2; exit 1; }

nginx_port=$((20000 + RANDOM % 10000))
while ss -ltn "sport = :$nginx_port" | grep -q LISTEN; do nginx_port=$((20000 + RANDOM % 10000)); done
cat >"$work/nginx.conf" <<CONF
user root;
worker_processes $threads;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$nginx_port; root $work/files; }
}
CONF
nginx -c "$work/nginx.conf" -p "$work" -g 'daemon off;' &
nginx_pid=$!
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$nginx_port/one-mib.bin" && break
  sleep 0.1
done

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

idle_rss=$(rss_kib "$relay_pid")
coproc idle_clients { "$idle" 127.0.0.1 "$relay_port" 1000 60; }
read -r -u "${idle_clients[0]}" opened
conn_rss=$(rss_kib "$relay_pid")
kill "$idle_clients_PID" 2>/dev/null || true
wait "$idle_clients_PID" 2>/dev/null || true

# wrk prints "Requests/sec: N" and "Transfer/sec: N{KB,MB,GB}" (binary units), and
# "Non-2xx or 3xx responses: N" when some were (a refusal is counted as a request: the row is then
# not a measurement, and says so).
run_wrk() {
  local connections=$1 url=$2 out t=$threads
  ((connections < t)) && t=$connections
  out=$(wrk -t "$t" -c "$connections" -d "${seconds}s" "$url")
  local rps transfer
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  transfer=$(awk '/Transfer\/sec/ {print $2}' <<<"$out")
  local errors
  errors=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  local mib
  mib=$(awk -v t="$transfer" 'BEGIN {
    v = t + 0; u = substr(t, length(t) - 1);
    if (u == "GB") v *= 1024; else if (u == "KB") v /= 1024; else if (u !~ /MB/) v /= 1048576;
    printf "%.1f", v }')
  echo "$rps $mib ${errors:-0}"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-26s %12s %10s %12s %10s %7s\n' "row" "nginx req/s" "MiB/s" "relay req/s" "MiB/s" "ratio"
ratios=()
row() {
  local label=$1 connections=$2 nginx_path=$3 relay_path=$4
  read -r n_rps n_mib n_err < <(run_wrk "$connections" "http://127.0.0.1:$nginx_port/$nginx_path")
  read -r r_rps r_mib r_err < <(run_wrk "$connections" "http://127.0.0.1:$relay_port/$relay_path")
  local ratio
  ratio=$(awk -v a="$r_mib" -v b="$n_mib" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  printf '%-26s %12s %10s %12s %10s %7s\n' "$label" "$n_rps" "$n_mib" "$r_rps" "$r_mib" "$ratio"
  if [[ $n_err != 0 || $r_err != 0 ]]; then
    echo "  NOT A MEASUREMENT: non-2xx answers, nginx $n_err, lanrelayd $r_err" >&2
    ratio="$ratio(errors)"
  fi
  ratios+=("$ratio")
}
row "1 MiB, 10 connections" 10 one-mib.bin cache/file/one-mib/1
row "1 MiB, 100 connections" 100 one-mib.bin cache/file/one-mib/1
row "256 MiB, 1 connection" 1 big.bin cache/file/big/1

echo
echo "ratios lanrelayd/nginx (goal >= 1.0 each): ${ratios[*]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "lanrelayd resident memory: idle $((idle_rss / 1024)) MiB ($idle_rss KiB);" \
  "with ${opened#open } idle connections $((conn_rss / 1024)) MiB ($conn_rss KiB)"
echo "machine: $(nproc) cores, $(uname -r); wrk -t $threads (fewer for fewer connections)," \
  "${seconds}s per run; nginx $threads workers, lanrelayd http.threads = $threads"
