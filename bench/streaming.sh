#!/usr/bin/env bash
# Added latency per streamed event: an upstream writes a server-sent event every
# INTERVAL_MS (COUNT of them) stamped with the shared monotonic clock; a client reads the
# stream directly, through HAProxy and through liftoff's router (each proxy one thread,
# pinned to CPU 0) and prints, per path, the p50 and p99 of (arrival - written), and
# what each proxy adds over the direct path. Several streams run one after another per
# path, interleaved, so the machine's noise falls on all of them alike.
#
#   bench/streaming.sh
#   COUNT=500 INTERVAL_MS=10 ROUNDS=3 bench/streaming.sh
#   BUSY=1 bench/streaming.sh   # keep both CPUs busy with nice-19 spinners
#
# BUSY=1 separates what the proxies add from the wake-up of an idle (virtual) CPU: a
# spinner at the lowest priority keeps each CPU from halting between events, and a woken
# proxy or client preempts it at once.
#
# Everything listens on 127.0.0.1; every process is started here and stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-500}
INTERVAL_MS=${INTERVAL_MS:-10}
ROUNDS=${ROUNDS:-3}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

command -v haproxy >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy; }

BENCH_NAME=streaming
# shellcheck source=bench/lib.sh
source bench/lib.sh

UP=$(port); HA=$(port); LO=$(port); API=$(port); NOBODY=$(port)
taskset -c "$LOAD_CPU" python3 bench/streaming/source.py "$UP" "$COUNT" "$INTERVAL_MS" & pids+=($!)

cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
defaults
  mode http
  option http-no-delay
  timeout connect 2s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:$HA
  default_backend app
backend app
  server up 127.0.0.1:$UP
CONF
taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -db & pids+=($!)

mkdir -p "$work/liftoff"
cat > "$work/liftoff/plan.yaml" <<CONF
version: 1
name: bench
service: bench
router: { kind: builtin, listen: "127.0.0.1:$LO", stable: "http://127.0.0.1:$UP", candidate: "http://127.0.0.1:$NOBODY" }
steps:
  - approve: { role: bench }
CONF
RUST_LOG=warn taskset -c "$PROXY_CPU" "$LIFTOFF" serve --listen "127.0.0.1:$API" --state-dir "$work/liftoff/state" --router-threads 1 & pids+=($!)
wait_port "$API"
routers+=("$work/liftoff/state/router")
wait_router "$work/liftoff/state/router"
taskset -a -p -c "$PROXY_CPU" "$(router_pid "$work/liftoff/state/router")" >/dev/null
LIFTOFF_SERVER="http://127.0.0.1:$API" LIFTOFF_STATE_DIR="$work/liftoff/state" "$LIFTOFF" launch "$work/liftoff/plan.yaml" >/dev/null
for p in "$UP" "$HA" "$LO"; do wait_port "$p"; done

if [ -n "${BUSY:-}" ]; then
  for cpu in "$PROXY_CPU" "$LOAD_CPU"; do
    taskset -c "$cpu" nice -n 19 sh -c 'while :; do :; done' & pids+=($!)
  done
fi

declare -A at=([direct]=$UP [haproxy]=$HA [liftoff]=$LO)
for round in $(seq "$ROUNDS"); do
  for target in direct haproxy liftoff; do
    taskset -c "$LOAD_CPU" python3 bench/streaming/sink.py "${at[$target]}" >> "$work/$target.us"
  done
done

python3 - "$work" <<'PY'
import statistics, sys
work = sys.argv[1]
def q(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))]
d = {t: [int(x) for x in open(f"{work}/{t}.us")] for t in ("direct", "haproxy", "liftoff")}
print(f"{'path':<8} {'events':>7} {'p50 us':>8} {'p99 us':>8} {'added p50':>10} {'added p99':>10}")
for t, v in d.items():
    a50 = q(v, .5) - q(d["direct"], .5)
    a99 = q(v, .99) - q(d["direct"], .99)
    print(f"{t:<8} {len(v):>7} {q(v,.5):>8} {q(v,.99):>8} {a50:>10} {a99:>10}")
PY
