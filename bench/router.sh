#!/usr/bin/env bash
# Router benchmark: the same 95/5 split in front of one nginx backend, served by nginx,
# HAProxy and liftoff's builtin router, each with one worker thread pinned to CPU 0
# (wrk and the backend share CPU 1). liftoff's router is the `liftoff router` process
# that `liftoff serve` starts (its PID in <state-dir>/router/lock): that process is
# pinned, with the daemon beside it on CPU 0. Prints req/s and p50/p99 at 64 and 256
# connections, each the median of RUNS runs, and the ratios liftoff/HAProxy,
# liftoff/nginx, liftoff/direct. Also each proxy's CPU time per request (user + system,
# from /proc, over every process of the proxy: nginx's master and worker, liftoff's
# router and daemon), a figure that holds when other work on the machine takes CPU 0
# from the proxies and their req/s falls with it.
#
#   bench/router.sh                  # needs root for apt-get if nginx/haproxy/wrk are missing
#   DURATION=10 RUNS=3 bench/router.sh
#   LIFTOFF_BASELINE=/path/to/older/liftoff bench/router.sh   # also measure another build
#
# Everything listens on 127.0.0.1; every process is started here and stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
CONNS=${CONNS:-"64 256"}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

need=()
for cmd in nginx haproxy wrk taskset; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light haproxy wrk util-linux
fi

BENCH_NAME=bench
# shellcheck source=bench/lib.sh
source bench/lib.sh

B1=$(port); B2=$(port); NG=$(port); HA=$(port); LO=$(port); API=$(port)

mkdir -p "$work/proxy"
start_backend "$B1" "$B2" taskset -c "$LOAD_CPU"

# nginx as the proxy: weights 95/5, an upstream keep-alive pool big enough for 256.
cat > "$work/proxy/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/proxy/nginx.pid;
error_log $work/proxy/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$B1 weight=95; server 127.0.0.1:$B2 weight=5; keepalive 512; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$NG;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
taskset -c "$PROXY_CPU" nginx -c "$work/proxy/nginx.conf" -p "$work/proxy" & pids+=($!)
NG_PID=$!

# HAProxy: one thread, weights 95/5, connection reuse.
cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:$HA
  default_backend app
backend app
  balance random
  server stable 127.0.0.1:$B1 weight 95
  server candidate 127.0.0.1:$B2 weight 5
CONF
taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -db & pids+=($!)
HA_PID=$!

# Pin every thread of the router process serving for daemon state dir $1 (builds
# where serve starts a `liftoff router`; it inherits serve's CPU, this makes sure of it,
# an adopted router included). Older builds route inside serve, pinned already.
pin_router() {
  local dir=$1/router
  [ -d "$dir" ] || return 0
  routers+=("$dir")
  wait_router "$dir"
  taskset -a -p -c "$PROXY_CPU" "$(router_pid "$dir")" >/dev/null
}

# liftoff: the daemon with one router thread, a launch holding the split at 5%.
mkdir -p "$work/liftoff"
split_plan "$work/liftoff/plan.yaml" "$LO" "$B1" "$B2"
RUST_LOG=warn taskset -c "$PROXY_CPU" "$LIFTOFF" serve --listen "127.0.0.1:$API" --state-dir "$work/liftoff/state" --router-threads 1 & pids+=($!)
LO_PID=$!
wait_port "$API"
pin_router "$work/liftoff/state"
LIFTOFF_SERVER="http://127.0.0.1:$API" LIFTOFF_STATE_DIR="$work/liftoff/state" "$LIFTOFF" launch "$work/liftoff/plan.yaml" >/dev/null
TARGETS="direct nginx haproxy liftoff"
# Another liftoff build (e.g. the last commit's), measured the same way: the change's
# effect with the machine's noise held equal.
if [ -n "${LIFTOFF_BASELINE:-}" ]; then
  BL=$(port); BL_API=$(port)
  mkdir -p "$work/baseline"
  split_plan "$work/baseline/plan.yaml" "$BL" "$B1" "$B2"
  RUST_LOG=warn taskset -c "$PROXY_CPU" "$LIFTOFF_BASELINE" serve --listen "127.0.0.1:$BL_API" --state-dir "$work/baseline/state" --router-threads 1 & pids+=($!)
  BL_PID=$!
  wait_port "$BL_API"
  pin_router "$work/baseline/state"
  LIFTOFF_SERVER="http://127.0.0.1:$BL_API" LIFTOFF_STATE_DIR="$work/baseline/state" "$LIFTOFF_BASELINE" launch "$work/baseline/plan.yaml" >/dev/null
  wait_port "$BL"
  TARGETS="$TARGETS baseline"
fi
for p in "$B1" "$B2" "$NG" "$HA" "$LO"; do wait_port "$p"; done
sleep 0.5

# The processes whose CPU time a target costs.
procs_of() {
  case $1 in
    nginx) echo "$NG_PID" $(pgrep -P "$NG_PID") ;;
    haproxy) echo "$HA_PID" ;;
    liftoff) echo "$LO_PID" $(router_pid "$work/liftoff/state/router") ;;
    baseline) echo "$BL_PID" $(router_pid "$work/baseline/state/router") ;;
  esac
}
# User + system clock ticks used so far by these processes (all their threads).
cpu_ticks() {
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat"))); done
  echo "$t"
}

# One wrk run: prints "req/s p50_ms p99_ms cpu_us_per_request" (0 for direct).
run() {
  local target=$1 conns=$2 before after
  before=$(cpu_ticks $(procs_of "$target"))
  taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${DURATION}s" --latency "$(url_of "$target")" 2>/dev/null >"$work/wrk.out"
  after=$(cpu_ticks $(procs_of "$target"))
  python3 -c '
import re, sys
text = open(sys.argv[1]).read()
cpu_us = int(sys.argv[2]) * 1e6 / int(sys.argv[3])
def ms(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
sock = re.search(r"Socket errors: (.*)", text)
if errors or sock:
    print("errors:", errors.group(0) if errors else "", sock.group(0) if sock else "", file=sys.stderr)
requests = int(re.search(r"(\d+) requests in", text).group(1))
print(rps, p50, p99, cpu_us / requests)' "$work/wrk.out" "$((after - before))" "$(getconf CLK_TCK)"
}

median() { sort -g | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }

url_of() {
  case $1 in
    direct) echo "http://127.0.0.1:$B1/" ;;
    nginx) echo "http://127.0.0.1:$NG/" ;;
    haproxy) echo "http://127.0.0.1:$HA/" ;;
    liftoff) echo "http://127.0.0.1:$LO/" ;;
    baseline) echo "http://127.0.0.1:$BL/" ;;
  esac
}

# Runs are interleaved (each round runs every target once), so a noisy spell on this
# shared machine lands on all targets alike instead of on one target's runs.
declare -A RPS P50 P99 CPU RESULTS
for conns in $CONNS; do
  for target in $TARGETS; do
    run "$target" "$conns" >/dev/null # warm-up (pools, caches)
  done
  for _ in $(seq "$RUNS"); do
    for target in $TARGETS; do
      RESULTS[$target,$conns]+="$(run "$target" "$conns")"$'\n'
    done
  done
  for target in $TARGETS; do
    results=${RESULTS[$target,$conns]}
    RPS[$target,$conns]=$(printf '%s' "$results" | awk '{print $1}' | median)
    P50[$target,$conns]=$(printf '%s' "$results" | awk '{print $2}' | median)
    P99[$target,$conns]=$(printf '%s' "$results" | awk '{print $3}' | median)
    CPU[$target,$conns]=$(printf '%s' "$results" | awk '{print $4}' | median)
    echo "$target c=$conns: ${RPS[$target,$conns]} req/s p50 ${P50[$target,$conns]} ms p99 ${P99[$target,$conns]} ms CPU ${CPU[$target,$conns]} us/request" >&2
  done
done

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); proxies pinned to CPU $PROXY_CPU with one worker, wrk and backend on CPU $LOAD_CPU; ${DURATION}s runs, median of $RUNS."
echo
echo "| target | conns | req/s | p50 ms | p99 ms | CPU µs/request |"
echo "|---|---:|---:|---:|---:|---:|"
for conns in $CONNS; do
  for target in $TARGETS; do
    printf '| %s | %s | %.0f | %.3f | %.3f | %s |\n' "$target" "$conns" "${RPS[$target,$conns]}" "${P50[$target,$conns]}" "${P99[$target,$conns]}" \
      "$([ "$target" = direct ] && echo - || printf '%.1f' "${CPU[$target,$conns]}")"
  done
done
echo
echo "| conns | liftoff/HAProxy req/s | liftoff/nginx req/s | liftoff/direct req/s | liftoff p99 / HAProxy p99 | liftoff/HAProxy CPU per request |"
echo "|---:|---:|---:|---:|---:|---:|"
for conns in $CONNS; do
  echo "| $conns | $(ratio "${RPS[liftoff,$conns]}" "${RPS[haproxy,$conns]}") | $(ratio "${RPS[liftoff,$conns]}" "${RPS[nginx,$conns]}") | $(ratio "${RPS[liftoff,$conns]}" "${RPS[direct,$conns]}") | $(ratio "${P99[liftoff,$conns]}" "${P99[haproxy,$conns]}") | $(ratio "${CPU[liftoff,$conns]}" "${CPU[haproxy,$conns]}") |"
done
if [ -n "${LIFTOFF_BASELINE:-}" ]; then
  echo
  echo "| conns | liftoff/baseline req/s | baseline/HAProxy req/s | liftoff/baseline CPU per request |"
  echo "|---:|---:|---:|---:|"
  for conns in $CONNS; do
    echo "| $conns | $(ratio "${RPS[liftoff,$conns]}" "${RPS[baseline,$conns]}") | $(ratio "${RPS[baseline,$conns]}" "${RPS[haproxy,$conns]}") | $(ratio "${CPU[liftoff,$conns]}" "${CPU[baseline,$conns]}") |"
  done
fi
