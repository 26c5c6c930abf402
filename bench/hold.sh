#!/usr/bin/env bash
# Router benchmark: the same 95/5 split in front of one nginx backend, served by nginx,
# HAProxy and liftoff's builtin router, each with one worker thread pinned to CPU 0
# (wrk and the backend share CPU 1). Prints req/s and p50/p99 at 64 and 256
# connections, each the median of RUNS runs, and the ratios liftoff/HAProxy,
# liftoff/nginx, liftoff/direct.
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

# liftoff: the daemon with one router thread, a launch holding the split at 5%.
mkdir -p "$work/liftoff"
cat > "$work/liftoff/plan.yaml" <<CONF
version: 1
name: bench
service: bench
router: { kind: builtin, listen: "127.0.0.1:$LO", stable: "http://127.0.0.1:$B1", candidate: "http://127.0.0.1:$B2" }
steps:
  - traffic: 5%
  - approve: { role: bench }
CONF
RUST_LOG=warn taskset -c "$PROXY_CPU" "$LIFTOFF" serve --listen "127.0.0.1:$API" --state-dir "$work/liftoff/state" --router-threads 1 & pids+=($!)
wait_port "$API"
LIFTOFF_SERVER="http://127.0.0.1:$API" LIFTOFF_STATE_DIR="$work/liftoff/state" "$LIFTOFF" launch "$work/liftoff/plan.yaml" >/dev/null
TARGETS="direct nginx haproxy liftoff"
# Another liftoff build (e.g. the last commit's), measured the same way: the change's
# effect with the machine's noise held equal.
if [ -n "${LIFTOFF_BASELINE:-}" ]; then
  BL=$(port); BL_API=$(port)
  mkdir -p "$work/baseline"
  sed "s/127.0.0.1:$LO/127.0.0.1:$BL/" "$work/liftoff/plan.yaml" > "$work/baseline/plan.yaml"
  RUST_LOG=warn taskset -c "$PROXY_CPU" "$LIFTOFF_BASELINE" serve --listen "127.0.0.1:$BL_API" --state-dir "$work/baseline/state" --router-threads 1 & pids+=($!)
  wait_port "$BL_API"
  LIFTOFF_SERVER="http://127.0.0.1:$BL_API" LIFTOFF_STATE_DIR="$work/baseline/state" "$LIFTOFF_BASELINE" launch "$work/baseline/plan.yaml" >/dev/null
  wait_port "$BL"
  TARGETS="$TARGETS baseline"
fi
for p in "$B1" "$B2" "$NG" "$HA" "$LO"; do wait_port "$p"; done
sleep 0.5

echo "B1=$B1 NG=$NG HA=$HA LO=$LO BL=${BL:-} API=$API BL_API=${BL_API:-}" > /tmp/bench-ports
echo "ready" >&2
sleep "${HOLD:-3000}"
