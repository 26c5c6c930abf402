#!/usr/bin/env bash
# TLS termination: liftoff's router against HAProxy, the same ECDSA P-256 certificate,
# each proxy one worker thread pinned to CPU 0 (wrk, the client and the nginx backend
# on CPU 1), the client's choice of cipher on both (TLS 1.3, AES-256-GCM from OpenSSL).
# Prints, each the median of RUNS runs:
#   - keep-alive requests/s over TLS at CONNS connections;
#   - new full handshakes/s (every request on a new connection, no resumption);
#   - memory: RSS of each proxy holding IDLE idle keep-alive connections (one request
#     each), over TLS and over plain HTTP, and the ratios liftoff/HAProxy.
#
#   bench/tls.sh
#   DURATION=10 RUNS=3 IDLE=9000 bench/tls.sh
#   LIFTOFF=/path/to/liftoff bench/tls.sh
#
# Everything listens on 127.0.0.1; every process is started here and stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
# 10,000 would need HAProxy's file limit above 20,000 (two per connection, its rule),
# which this machine's hard limit (20,000) does not allow.
IDLE=${IDLE:-9000}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

need=()
for cmd in nginx haproxy wrk taskset openssl; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light haproxy wrk util-linux openssl
fi
# Ten thousand connections, in every process started below.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE + 1000)) ]; then
  echo "open files limited to $(ulimit -n): IDLE=$IDLE needs more" >&2
  exit 1
fi

BENCH_NAME=tls
# shellcheck source=bench/lib.sh
source bench/lib.sh

B1=$(port); B2=$(port); HA=$(port); HA_PLAIN=$(port); LO=$(port); LO_PLAIN=$(port)
API=$(port); API2=$(port)
start_backend "$B1" "$B2" taskset -c "$LOAD_CPU"

# One certificate for both: ECDSA P-256, for bench.test.
(
  cd "$work"
  printf 'subjectAltName=DNS:bench.test\n' >san.ext
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout bench.key -out bench.pem -days 2 -subj /CN=bench.test -addext "subjectAltName=DNS:bench.test" 2>/dev/null
  cat bench.pem bench.key >haproxy.pem
)

# Two HAProxy processes, as liftoff has two routers: the memory of each kind of
# connection is measured on a process that held no other.
haproxy_cfg() { # file bind-line
  cat >"$1" <<CONF
global
  nbthread 1
  maxconn 9500
  ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
  mode http
  timeout connect 2s
  timeout client 120s
  timeout server 30s
  timeout http-keep-alive 120s
  http-reuse always
frontend fe
  $2
  default_backend app
backend app
  balance random
  server stable 127.0.0.1:$B1 weight 95
  server candidate 127.0.0.1:$B2 weight 5
CONF
}
haproxy_cfg "$work/haproxy.cfg" "bind 127.0.0.1:$HA ssl crt $work/haproxy.pem alpn http/1.1"
haproxy_cfg "$work/haproxy-plain.cfg" "bind 127.0.0.1:$HA_PLAIN"
taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -db & pids+=($!)
HA_PID=$!
taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy-plain.cfg" -db & pids+=($!)
HA_PLAIN_PID=$!

# liftoff: two daemons (one route each: TLS on one listener, plain on the other), each
# with one router thread; the memory of a route is measured on its own router process.
plan() {
  cat >"$1" <<CONF
version: 1
name: bench
service: bench
router:
  kind: builtin
  listen: "127.0.0.1:$2"
$3  stable: "http://127.0.0.1:$B1"
  candidate: "http://127.0.0.1:$B2"
steps:
  - traffic: 5%
  - approve: { role: bench }
CONF
}
start_liftoff() { # dir api-port plan-port tls-lines
  mkdir -p "$work/$1"
  plan "$work/$1/plan.yaml" "$3" "$4"
  RUST_LOG=warn taskset -c "$PROXY_CPU" "$LIFTOFF" serve --listen "127.0.0.1:$2" --state-dir "$work/$1/state" --router-threads 1 & pids+=($!)
  wait_port "$2"
  routers+=("$work/$1/state/router")
  wait_router "$work/$1/state/router"
  taskset -a -p -c "$PROXY_CPU" "$(router_pid "$work/$1/state/router")" >/dev/null
  LIFTOFF_SERVER="http://127.0.0.1:$2" LIFTOFF_STATE_DIR="$work/$1/state" "$LIFTOFF" launch "$work/$1/plan.yaml" >/dev/null
  wait_port "$3"
}
start_liftoff liftoff "$API" "$LO" "  tls: { cert: $work/bench.pem, key: $work/bench.key }
"
start_liftoff plain "$API2" "$LO_PLAIN" ""
LO_PID=$(router_pid "$work/liftoff/state/router")
LO_PLAIN_PID=$(router_pid "$work/plain/state/router")
for p in "$HA" "$HA_PLAIN"; do wait_port "$p"; done
sleep 0.5

url_of() {
  case $1 in
    haproxy) echo "https://127.0.0.1:$HA/" ;;
    liftoff) echo "https://127.0.0.1:$LO/" ;;
  esac
}

# The server's CPU: user + system clock ticks of a process (all its threads).
cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
pid_of() { case $1 in haproxy) echo "$HA_PID" ;; liftoff) echo "$LO_PID" ;; esac; }
per_op_us() { python3 -c "print(f'{$1 * 1e6 / $(getconf CLK_TCK) / max($2, 1):.1f}')"; }

# Keep-alive requests over TLS: "req/s CPU-us-per-request".
keepalive() {
  local before after
  before=$(cpu_ticks "$(pid_of "$1")")
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" "$(url_of "$1")" 2>/dev/null >"$work/wrk.out"
  after=$(cpu_ticks "$(pid_of "$1")")
  python3 -c '
import re, sys
text = open(sys.argv[1]).read()
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
sock = re.search(r"Socket errors: (.*)", text)
if errors or sock:
    print("errors:", errors.group(0) if errors else "", sock.group(0) if sock else "", file=sys.stderr)
requests = int(re.search(r"(\d+) requests in", text).group(1))
rps = re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)
print(rps, int(sys.argv[2]) * 1e6 / int(sys.argv[3]) / requests)' "$work/wrk.out" "$((after - before))" "$(getconf CLK_TCK)"
}

# New connections, each a full handshake (no resumption) and one request: two
# `openssl s_time -new` clients on the load CPU. "handshakes/s CPU-us-per-handshake".
# The clients' own handshake work (verifying ECDSA costs more than signing) bounds
# the rate alike for both proxies; the server's CPU per handshake is the comparison.
handshakes() {
  local before after port total=0 n clients=()
  port=$(url_of "$1" | sed 's|.*:\([0-9]*\)/|\1|')
  before=$(cpu_ticks "$(pid_of "$1")")
  for i in 1 2; do
    taskset -c "$LOAD_CPU" openssl s_time -connect "127.0.0.1:$port" -new -time "$DURATION" -www / >"$work/s_time.$i" 2>&1 &
    clients+=($!)
  done
  wait "${clients[@]}" 2>/dev/null || true
  after=$(cpu_ticks "$(pid_of "$1")")
  for i in 1 2; do
    n=$(awk '/connections in/ && /real seconds/ {print $1; exit}' "$work/s_time.$i")
    total=$((total + ${n:-0}))
  done
  echo "$(python3 -c "print(f'{$total / $DURATION:.0f}')") $(per_op_us $((after - before)) "$total")"
}
median() { sort -g | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }

declare -A KEEP KEEP_CPU NEW NEW_CPU RESULTS
for target in haproxy liftoff; do
  keepalive "$target" >/dev/null # warm-up
done
for _ in $(seq "$RUNS"); do
  for target in haproxy liftoff; do
    RESULTS[$target,keep]+="$(keepalive "$target")"$'\n'
    RESULTS[$target,new]+="$(handshakes "$target")"$'\n'
  done
done
for target in haproxy liftoff; do
  KEEP[$target]=$(printf '%s' "${RESULTS[$target,keep]}" | awk '{print $1}' | median)
  KEEP_CPU[$target]=$(printf '%s' "${RESULTS[$target,keep]}" | awk '{print $2}' | median)
  NEW[$target]=$(printf '%s' "${RESULTS[$target,new]}" | awk '{print $1}' | median)
  NEW_CPU[$target]=$(printf '%s' "${RESULTS[$target,new]}" | awk '{print $2}' | median)
  echo "$target: keep-alive ${KEEP[$target]} req/s (${KEEP_CPU[$target]} us CPU each), new handshakes ${NEW[$target]}/s (${NEW_CPU[$target]} us CPU each)" >&2
done

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# RSS of PID while IDLE idle connections to PORT are open (mode tls or plain).
idle_rss() {
  local pid=$1 port=$2 mode=$3 fifo="$work/idle.fifo" before after
  before=$(rss_kb "$pid")
  rm -f "$fifo"; mkfifo "$fifo"
  taskset -c "$LOAD_CPU" python3 bench/tls/idle.py 127.0.0.1 "$port" "$IDLE" "$mode" <"$fifo" >"$work/idle.out" &
  local client=$!
  exec 7>"$fifo"
  for _ in $(seq 1200); do grep -q ready "$work/idle.out" 2>/dev/null && break; sleep 0.1; done
  grep -q "ready $IDLE" "$work/idle.out" || { echo "idle client failed: $(cat "$work/idle.out")" >&2; }
  sleep 1
  after=$(rss_kb "$pid")
  exec 7>&-
  wait "$client" 2>/dev/null || true
  sleep 2 # the proxies close the connections
  echo "$before $after"
}
read -r HA_TLS0 HA_TLS1 < <(idle_rss "$HA_PID" "$HA" tls)
read -r LO_TLS0 LO_TLS1 < <(idle_rss "$LO_PID" "$LO" tls)
read -r HA_PL0 HA_PL1 < <(idle_rss "$HA_PLAIN_PID" "$HA_PLAIN" plain)
read -r LO_PL0 LO_PL1 < <(idle_rss "$LO_PLAIN_PID" "$LO_PLAIN" plain)

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
mib() { python3 -c "print(f'{$1/1024:.1f}')"; }
echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); proxies pinned to CPU $PROXY_CPU with one worker, wrk and backend on CPU $LOAD_CPU; ${DURATION}s runs, median of $RUNS; ECDSA P-256, TLS 1.3."
echo
echo "| target | keep-alive req/s ($CONNS conns) | CPU µs/request | new handshakes/s | CPU µs/handshake | RSS with $IDLE idle TLS conns (MiB) | RSS with $IDLE idle plain conns (MiB) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
printf '| HAProxy | %.0f | %.1f | %s | %s | %s (+%s) | %s (+%s) |\n' "${KEEP[haproxy]}" "${KEEP_CPU[haproxy]}" "${NEW[haproxy]}" "${NEW_CPU[haproxy]}" "$(mib "$HA_TLS1")" "$(mib $((HA_TLS1 - HA_TLS0)))" "$(mib "$HA_PL1")" "$(mib $((HA_PL1 - HA_PL0)))"
printf '| liftoff | %.0f | %.1f | %s | %s | %s (+%s) | %s (+%s) |\n' "${KEEP[liftoff]}" "${KEEP_CPU[liftoff]}" "${NEW[liftoff]}" "${NEW_CPU[liftoff]}" "$(mib "$LO_TLS1")" "$(mib $((LO_TLS1 - LO_TLS0)))" "$(mib "$LO_PL1")" "$(mib $((LO_PL1 - LO_PL0)))"
echo
echo "| liftoff/HAProxy keep-alive req/s | CPU per request | handshakes/s | CPU per handshake | RSS, idle TLS | RSS, idle plain |"
echo "|---:|---:|---:|---:|---:|---:|"
echo "| $(ratio "${KEEP[liftoff]}" "${KEEP[haproxy]}") | $(ratio "${KEEP_CPU[liftoff]}" "${KEEP_CPU[haproxy]}") | $(ratio "${NEW[liftoff]}" "${NEW[haproxy]}") | $(ratio "${NEW_CPU[liftoff]}" "${NEW_CPU[haproxy]}") | $(ratio "$LO_TLS1" "$HA_TLS1") | $(ratio "$LO_PL1" "$HA_PL1") |"
