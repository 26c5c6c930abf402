#!/usr/bin/env bash
# OFREP benchmark against `liftoff serve` pinned to one CPU, wrk on the other:
# - single: one flag per request (`POST /ofrep/v1/evaluate/flags/{key}`, what OpenFeature
#   server providers send);
# - bulk: every flag, 10 of them, per request (`POST /ofrep/v1/evaluate/flags`, what web
#   providers send; the same kind of call as Unleash Edge's frontend API), no ETag.
# Each request carries another user (targetingKey) and email, so percentage rollouts hash
# every time and rules run. Prints req/s, p50, p95, p99 and the daemon's CPU time per
# request, per call and connection count (median of RUNS runs), then in-process
# evaluations per second (crates/flags/examples/throughput.rs).
#
#   bench/ofrep.sh                       # needs root for apt-get if wrk is missing
#   DURATION=10 RUNS=3 CONNS="16 64 256" bench/ofrep.sh
#
# Everything listens on 127.0.0.1; every process is started here and stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
CONNS=${CONNS:-"16 64 256"}
DAEMON_CPU=${DAEMON_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

need=()
for cmd in wrk taskset curl; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk util-linux curl
fi

BENCH_NAME=ofrep
# shellcheck source=bench/lib.sh
source bench/lib.sh

API=$(port)
state="$work/state"
# One CPU: tokio sizes its runtime from the affinity mask, so the API runs one worker.
RUST_LOG=warn taskset -c "$DAEMON_CPU" "$LIFTOFF" serve --listen "127.0.0.1:$API" --state-dir "$state" --router-threads 1 & pids+=($!)
daemon=$!
wait_port "$API"
export LIFTOFF_SERVER="http://127.0.0.1:$API" LIFTOFF_STATE_DIR="$state"

# The flag: a boolean at a 25% sticky rollout, after a targeting rule (staff always on).
curl -sf -X PUT "$LIFTOFF_SERVER/api/admin/feature-flags/new_checkout" \
  -H "Authorization: Bearer $(cat "$state/admin.token")" \
  -d '{"type": "boolean", "rollout": {"percent": 25},
       "rules": [{"when": [{"attribute": "email", "op": "matches", "value": "@example\\.com$"}], "variant": "on"}]}' >/dev/null
# Nine more for the bulk call: ramps, kill-switched, and a string flag with rules.
for i in 1 2 3 4 5 6; do
  "$LIFTOFF" flags rollout "ramp_$i" $((i * 15)) >/dev/null
done
"$LIFTOFF" flags disable killed >/dev/null
"$LIFTOFF" flags enable maintenance_mode >/dev/null
echo '{"type": "string", "variants": {"blue": "#00f", "grey": "#888"}, "default_variant": "grey",
       "rules": [{"when": [{"attribute": "plan", "op": "in", "value": ["pro", "team"]}], "variant": "blue"}]}' \
  | "$LIFTOFF" flags set theme --file - >/dev/null
KEY=$("$LIFTOFF" flags keys create bench 2>/dev/null)

for call in single bulk; do
  path=/ofrep/v1/evaluate/flags/new_checkout
  [ "$call" = bulk ] && path=/ofrep/v1/evaluate/flags
  cat > "$work/$call.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  local body = '{"context":{"targetingKey":"user-' .. n .. '","email":"user' .. n .. '@shop.test","plan":"free"}}'
  return wrk.format("POST", "$path",
    {["X-API-Key"] = "$KEY", ["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %f %f %f %f %d %d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
done

# Sanity: the call answers like the providers expect.
curl -sf -X POST "$LIFTOFF_SERVER/ofrep/v1/evaluate/flags/new_checkout" -H "X-API-Key: $KEY" \
  -d '{"context":{"targetingKey":"user-1"}}' | grep -q '"reason":"SPLIT"'

# The daemon's CPU time so far, in clock ticks (user + system).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$daemon/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# One wrk run: prints "req/s p50_ms p95_ms p99_ms cpu_us_per_request". The CPU time per
# request is the figure to trust when something else shares the machine: req/s and
# latency suffer from a busy neighbour, the daemon's own CPU per request much less.
run() {
  local call=$1 conns=$2
  local out before after
  before=$(cpu_ticks)
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${DURATION}s" -s "$work/$call.lua" "$LIFTOFF_SERVER" 2>/dev/null | grep '^RESULT')
  after=$(cpu_ticks)
  read -r _ n rps p50 p95 p99 bad sock <<<"$out"
  if [ "$bad" != 0 ] || [ "$sock" != 0 ]; then echo "errors: $bad non-2xx, $sock socket" >&2; fi
  echo "$rps $p50 $p95 $p99 $(awk -v t=$((after - before)) -v us="$TICK_US" -v n="$n" 'BEGIN {printf "%.1f", t * us / n}')"
}

median() { sort -g | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }

declare -A RPS P50 P95 P99 CPU
for call in single bulk; do
  for conns in $CONNS; do
    run "$call" "$conns" >/dev/null # warm-up
    results=()
    for _ in $(seq "$RUNS"); do results+=("$(run "$call" "$conns")"); done
    k=$call,$conns
    RPS[$k]=$(printf '%s\n' "${results[@]}" | awk '{print $1}' | median)
    P50[$k]=$(printf '%s\n' "${results[@]}" | awk '{print $2}' | median)
    P95[$k]=$(printf '%s\n' "${results[@]}" | awk '{print $3}' | median)
    P99[$k]=$(printf '%s\n' "${results[@]}" | awk '{print $4}' | median)
    CPU[$k]=$(printf '%s\n' "${results[@]}" | awk '{print $5}' | median)
    echo "$call c=$conns: ${RPS[$k]} req/s p50 ${P50[$k]} ms p95 ${P95[$k]} ms p99 ${P99[$k]} ms, ${CPU[$k]} us CPU/request" >&2
  done
done

# The daemon's own count, as a check that the evaluations happened.
evaluated=$(curl -s "$LIFTOFF_SERVER/metrics" | awk '/^liftoff_flag_evaluations_total\{/ {s += $2} END {printf "%d", s}')

echo "building the in-process benchmark..." >&2
cargo build --release --locked -p liftoff-flags --example throughput >&2
inproc=$(taskset -c "$DAEMON_CPU" "$target_dir/release/examples/throughput" 3)

echo
busy=$(awk '{print $1}' /proc/loadavg)
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); the daemon pinned to CPU $DAEMON_CPU, wrk (1 thread) on CPU $LOAD_CPU; ${DURATION}s runs after a warm-up, median of $RUNS; a new user per request; $evaluated evaluations counted by the daemon; load average at the end $busy."
echo
echo "| call | conns | req/s | p50 ms | p95 ms | p99 ms | daemon CPU µs/request |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for call in single bulk; do
  for conns in $CONNS; do
    k=$call,$conns
    printf '| %s | %s | %.0f | %.3f | %.3f | %.3f | %s |\n' "$call" "$conns" "${RPS[$k]}" "${P50[$k]}" "${P95[$k]}" "${P99[$k]}" "${CPU[$k]}"
  done
done
echo
echo "In-process (one thread, 10,000 users):"
echo "$inproc" | sed 's/^/- /'
