#!/usr/bin/env bash
# The ActiveUpdate mirror against a plain HTTP client (issue 4), all on 127.0.0.1:
#   1. a first sync of a generated AU tree (BENCH_MIB, default 2048 MiB, in 200 files: full
#      patterns and engines with a .sig beside each .zip, and many Merge diffs) from Debian's
#      nginx (sendfile on) by a real lanrelayd, timed until every file is published (the relay's
#      "sync done" log line), until `lanrelay mirror sync --json` returns (the result waits for
#      the digests of the new files) and until /-/mirror shows every file hashed; in the same
#      run `wget -i` fetches the same
#      file list (keep-alive, one connection) into a directory, timed alone and followed by
#      `sync` (the relay fsyncs every file, wget does not);
#   2. an unchanged re-sync: requests and payload bytes from the sync result and nginx's log;
#   3. pull-through: a second relay that prefetches only engines (include = ["ENGINE"]) and
#      pulls patterns through on first request (pull_through = ["PATTERN"]) gets 50
#      simultaneous GETs of the largest pattern; upstream bytes / item size from nginx's log.
#
# Usage: tests/bench/mirror_bench.sh [BUILD_DIR]     (default: build/release; build it first)
# Environment: BENCH_MIB (default 2048) tree size; BENCH_DIR (default /var/tmp) where the tree,
# the relays' state and wget's copy go (the same filesystem; needs about 3 x BENCH_MIB free).
# Every step has a deadline; processes and files are removed on exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

build=${1:-build/release}
mib=${BENCH_MIB:-2048}
base_dir=${BENCH_DIR:-/var/tmp}
relayd=$build/relay/lanrelayd
cli=$build/cli/lanrelay
agents=50
for tool in "$relayd" "$cli"; do
  [[ -x $tool ]] || { echo "mirror_bench: $tool is missing; build the release preset first" >&2; exit 1; }
done
for tool in nginx wget curl; do
  command -v "$tool" >/dev/null || { echo "mirror_bench: $tool is missing (deploy/install-deps.sh)" >&2; exit 1; }
done
free_mib=$(df -Pm "$base_dir" | awk 'NR == 2 {print $4}')
if ((free_mib < 3 * mib + 512)); then
  echo "mirror_bench: $base_dir has ${free_mib} MiB free, needs $((3 * mib + 512)); set BENCH_MIB lower" >&2
  exit 1
fi

work=$(mktemp -d "$base_dir/lanrelay-mirror-bench.XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "mirror_bench: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# --- The tree: 10 full patterns with 17 Merge diffs each, 5 engines; a .sig beside each .zip.
# 15 .zip + 15 .sig + 170 diffs = 200 files. Diffs 0.1 to 2.9 MiB, engines 1/40 of the tree each,
# the patterns share the rest.
www=$work/www/activeupdate
mkdir -p "$www" "$work/nginx"
total=$((mib << 20))
list=$work/files.txt
: >"$list"
declare -A size_of
add_file() {  # path size
  mkdir -p "$(dirname "$www/$1")"
  head -c "$2" /dev/urandom >"$www/$1"
  size_of[$1]=$2
  echo "$1" >>"$list"
  if [[ $1 == *.zip ]]; then
    local sig=${1%.zip}.sig
    head -c $((2000 + $2 % 1000)) /dev/urandom >"$www/$sig"
    echo "$sig" >>"$list"
  fi
}
gen_start=$(now)
diffs_bytes=0 pattern_total=0
declare -a diff_lines=()
for i in $(seq 0 9); do
  id=$((48020000 + i * 10000))
  for k in $(seq 1 17); do
    from=$((1668000 - k * 100))
    path=pattern/p$i/lpt_$from.1668000
    size=$(((1 + (i * 17 + k) * 7919 % 29) * 102400))
    add_file "$path" "$size"
    diffs_bytes=$((diffs_bytes + size))
    diff_lines+=("P.$id.Merge.$k=$path,$from,$size")
  done
done
engine_size=$((total / 40))
engine_lines=""
for e in $(seq 1 5); do
  path=engine/engv_nt386_v12500-100$e.zip
  add_file "$path" "$engine_size"
  engine_lines+="E.$e=VSAPI_$e,$path,12.500.100$e,$engine_size,6.510.1002"$'\r\n'
done
pattern_size=$(((total - diffs_bytes - 5 * engine_size) / 10))
((pattern_size > 0)) || fail "BENCH_MIB=$mib is too small for the fixed diffs"
pattern_lines=""
for i in $(seq 0 9); do
  id=$((48020000 + i * 10000))
  # Sizes spread +-20 % around the mean, summing to the same total.
  size=$((pattern_size + (i - 4) * pattern_size / 25 - pattern_size / 50))
  ((i == 9)) && size=$((total - diffs_bytes - 5 * engine_size - pattern_total))
  pattern_total=$((pattern_total + size))
  path=pattern/p$i/lpt1668000.zip
  add_file "$path" "$size"
  pattern_lines+="P.$id=$path,1668000,$size"$'\r\n'
  for k in $(seq 1 17); do
    pattern_lines+="${diff_lines[$((i * 17 + k - 1))]}"$'\r\n'
  done
done
largest=pattern/p9/lpt1668000.zip
{
  printf '[Server]\r\nServer.1=http://au.example.com/activeupdate\r\n\r\n'
  printf '[PATTERN]\r\n%s\r\n' "$pattern_lines"
  printf '[ENGINE]\r\n%s' "$engine_lines"
} >"$www/server.ini"
files=$(wc -l <"$list")
tree_bytes=$(cd "$www" && xargs stat -c %s <"$list" | awk '{s += $1} END {printf "%.0f", s}')
sync  # the generated tree reaches the disk before anything is timed
gen_s=$(elapsed "$gen_start" "$(now)")

# --- The upstream: Debian's nginx, sendfile on, an access log the benchmark reads.
nginx_port=$((20000 + RANDOM % 10000))
while ss -ltn "sport = :$nginx_port" | grep -q LISTEN; do nginx_port=$((20000 + RANDOM % 10000)); done
cat >"$work/nginx/nginx.conf" <<CONF
user root;
worker_processes $(nproc);
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  log_format bench '\$request_method|\$uri|\$status|\$body_bytes_sent|\$remote_port';
  access_log $work/nginx/access.log bench;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$nginx_port; root $work/www; }
}
CONF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx/" -e "$work/nginx/error.log" -g 'daemon off;' &
pids+=($!)
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$nginx_port/activeupdate/server.ini" && break
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$nginx_port/activeupdate/server.ini" || fail "nginx did not start"
upstream=http://127.0.0.1:$nginx_port/activeupdate/
log_lines() { wc -l <"$work/nginx/access.log"; }
# Waits until nginx's log has $1 lines (it writes each just after the response).
wait_log() { for _ in $(seq 100); do (($(log_lines) >= $1)) && return 0; sleep 0.05; done; return 1; }

# `lanrelay mirror sync` is an admin request: the relays take this token, the CLI sends it.
LANRELAY_ADMIN_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
export LANRELAY_ADMIN_TOKEN

# Starts lanrelayd with state dir $1 and extra [[mirror.source]] lines $2; sets relay_port.
start_relay() {
  local state=$1 extra=$2
  mkdir -p "$state"
  cat >"$state.toml" <<CONF
[discovery]
# Loopback only: no discovery sockets, no multicast membership on the machine's interfaces.
enabled = false
[http]
listen = "127.0.0.1"
port = 0
[peers]
max_peers = 100
# The 50 agents all come from 127.0.0.1: one client to the relay's fair share.
max_peers_per_client = 100
[log]
level = "info"
[admin]
token = "$LANRELAY_ADMIN_TOKEN"
[mirror]
public_url = "http://127.0.0.1:4127"
pull_through_wait = "2m"
[[mirror.source]]
name = "vendor"
url = "$upstream"
jitter = "0ms"
$extra
CONF
  : >"$state.out"
  "$relayd" --config "$state.toml" --state-dir "$state" >>"$state.out" 2>&1 &
  pids+=($!)
  relay_port=""
  for _ in $(seq 100); do
    relay_port=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\).*/\1/p' "$state.out" | head -n 1)
    [[ -n $relay_port ]] && return 0
    sleep 0.05
  done
  cat "$state.out" >&2
  fail "lanrelayd did not start"
}
mirror_field() {  # port field: from /-/mirror's first source
  curl -sf "http://127.0.0.1:$1/-/mirror" | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['$2'])"
}
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['results'][0]['$1'])"; }
upstream_bytes_since() {  # first line, [uri]
  tail -n +"$1" "$work/nginx/access.log" | awk -F'|' -v u="${2:-}" 'u == "" || $2 == u {s += $4} END {printf "%.0f", s}'
}

# --- 1a. wget fetches the listed files over one keep-alive connection.
mkdir -p "$work/wget"
sed "s|^|$upstream|" "$list" >"$work/urls.txt"
wget_start=$(now)
timeout 600 wget -q -x -nH -P "$work/wget" -i "$work/urls.txt" || fail "wget failed"
wget_done=$(now)
sync
wget_synced=$(now)
wget_s=$(elapsed "$wget_start" "$wget_done")
wget_sync_s=$(elapsed "$wget_start" "$wget_synced")
[[ $(du -sb "$work/wget" | cut -f1) -ge $tree_bytes ]] || fail "wget's copy is incomplete"
rm -rf "$work/wget"  # out of the relay's way (and of its page cache)
sync

# --- 1b. The relay's first sync. lanrelayd starts a sync as it starts (no earlier attempt);
# `mirror sync` joins it, so the time runs from lanrelayd's exec (start-up is about 35 ms).
before=$(log_lines)
relay_start=$(now)
start_relay "$work/relay1" ""
port1=$relay_port
first=$(timeout 900 "$cli" mirror sync vendor --relay "127.0.0.1:$port1" --json) || fail "first sync failed: $first"
synced=$(now)
hashed_files=0
for _ in $(seq 6000); do
  hashed_files=$(mirror_field "$port1" files)
  ((hashed_files >= files)) && break
  sleep 0.05
done
hashed=$(now)
((hashed_files >= files)) || fail "only $hashed_files of $files files hashed after 5 minutes"
log_time() {  # the first log line of $1 matching $2, as seconds since the epoch
  local t
  t=$(grep -m 1 -- "$2" "$1" | cut -d' ' -f1)
  [[ -n $t ]] && date -d "$t" +%s.%N
}
published=$(log_time "$work/relay1.out" "event=mirror_sync_done name=vendor") || fail "no 'sync done' in the relay's log"
pruned=$(log_time "$work/relay1.out" "event=mirror_prune name=vendor") || pruned=$synced
publish_s=$(elapsed "$relay_start" "$published")
digest_s=$(elapsed "$published" "$pruned")
sync_s=$(elapsed "$relay_start" "$synced")
hash_s=$(elapsed "$relay_start" "$hashed")
first_requests=$(json_field requests <<<"$first")
first_bytes=$(json_field bytes_downloaded <<<"$first")
first_files=$(json_field files_downloaded <<<"$first")
wait_log $((before + first_requests))
first_upstream=$(upstream_bytes_since $((before + 1)))
relay_cpu=$(awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/${pids[-1]}/stat")
cmp -s "$www/$largest" "$work/relay1/mirror/vendor/tree/$largest" || fail "the mirrored $largest differs"

# --- 2. Unchanged re-sync.
before=$(log_lines)
again=$(timeout 60 "$cli" mirror sync vendor --relay "127.0.0.1:$port1" --json) || fail "re-sync failed: $again"
again_requests=$(json_field requests <<<"$again")
again_bytes=$(json_field bytes_downloaded <<<"$again")
again_304=$(json_field not_modified <<<"$again")
wait_log $((before + again_requests))
again_log=$(tail -n +$((before + 1)) "$work/nginx/access.log")
again_log_lines=$(wc -l <<<"$again_log")
again_log_bytes=$(awk -F'|' '{s += $4} END {printf "%.0f", s}' <<<"$again_log")
again_status=$(cut -d'|' -f3 <<<"$again_log" | tr '\n' ' ')
kill "${pids[-1]}" && wait "${pids[-1]}" 2>/dev/null || true
unset 'pids[-1]'
rm -rf "$work/relay1"
sync

# --- 3. Pull-through: 50 simultaneous GETs of a pattern the relay has not fetched ahead.
start_relay "$work/relay2" $'include = ["ENGINE"]\npull_through = ["PATTERN"]'
port2=$relay_port
timeout 300 "$cli" mirror sync vendor --relay "127.0.0.1:$port2" --json >/dev/null || fail "engine sync failed"
[[ ! -e $work/relay2/mirror/vendor/tree/$largest ]] || fail "$largest was fetched ahead"
before=$(log_lines)
item_size=${size_of[$largest]}
pull_start=$(now)
curls=()
for a in $(seq "$agents"); do
  curl -s -o /dev/null -m 300 -w '%{http_code} %{size_download}\n' \
    "http://127.0.0.1:$port2/activeupdate/vendor/$largest" >"$work/agent-$a.out" &
  curls+=($!)
done
wait_agents=0
for job in "${curls[@]}"; do
  wait "$job" || wait_agents=$((wait_agents + 1))
done
pull_s=$(elapsed "$pull_start" "$(now)")
pull_ok=$(cat "$work"/agent-*.out | awk -v n="$item_size" '$1 == 200 && $2 == n' | wc -l)
pull_busy=$(cat "$work"/agent-*.out | awk '$1 == 503' | wc -l)
sleep 0.5  # nginx writes its log line after the response
pull_gets=$(tail -n +$((before + 1)) "$work/nginx/access.log" | awk -F'|' -v u="/activeupdate/$largest" '$2 == u' | wc -l)
pull_upstream=$(upstream_bytes_since $((before + 1)) "/activeupdate/$largest")
cmp -s "$www/$largest" "$work/relay2/mirror/vendor/tree/$largest" || fail "the pulled $largest differs"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
mibps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? b / 1048576 / s : 0) }'; }
echo "tree: $files files, $tree_bytes bytes ($((tree_bytes >> 20)) MiB), largest $((item_size >> 20)) MiB; generated in ${gen_s} s"
echo
printf '%-44s %9s %9s\n' "first sync" "seconds" "MiB/s"
printf '%-44s %9s %9s\n' "wget -i (one connection, no fsync)" "$wget_s" "$(mibps "$tree_bytes" "$wget_s")"
printf '%-44s %9s %9s\n' "wget -i, then sync(1)" "$wget_sync_s" "$(mibps "$tree_bytes" "$wget_sync_s")"
printf '%-44s %9s %9s\n' "lanrelayd: exec to every file published" "$publish_s" "$(mibps "$tree_bytes" "$publish_s")"
printf '%-44s %9s %9s\n' "lanrelayd: exec to sync result" "$sync_s" "$(mibps "$tree_bytes" "$sync_s")"
printf '%-44s %9s %9s\n' "lanrelayd: exec to all files hashed" "$hash_s" "$(mibps "$tree_bytes" "$hash_s")"
echo "of which hashing after publication (sync done to prune in the relay's log): ${digest_s} s"
echo "ratio relay/wget: published $(ratio "$publish_s" "$wget_s"), sync result $(ratio "$sync_s" "$wget_s"), hashed $(ratio "$hash_s" "$wget_s");" \
  "against wget+sync: $(ratio "$sync_s" "$wget_sync_s"), $(ratio "$hash_s" "$wget_sync_s")"
echo "sync result: files_downloaded $first_files, requests $first_requests, bytes_downloaded $first_bytes;" \
  "nginx sent $first_upstream body bytes; lanrelayd CPU (user+sys) ${relay_cpu} s," \
  "$(awk -v c="$relay_cpu" -v b="$first_bytes" 'BEGIN { printf "%.2f", (b > 0 ? c / (b / 1073741824) : 0) }') s per GiB downloaded"
echo
echo "unchanged re-sync: requests $again_requests, bytes_downloaded $again_bytes, not_modified $again_304;" \
  "nginx: $again_log_lines request(s), status $again_status, $again_log_bytes body bytes"
echo
echo "pull-through: $agents agents, item $item_size bytes: $pull_ok got 200 with every byte, $pull_busy got 503," \
  "$wait_agents curl failures; last done after ${pull_s} s"
echo "upstream: $pull_gets GET(s), $pull_upstream bytes; upstream bytes / item size = $(ratio "$pull_upstream" "$item_size")"
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r), $(nginx -v 2>&1 | sed 's/.*\///'), wget $(wget --version | awk 'NR == 1 {print $3}'); $base_dir on $(df -PT "$base_dir" | awk 'NR == 2 {print $2}')"
