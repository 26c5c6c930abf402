#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: a figure that
# repeats to within a few dozen instructions whatever else the machine is doing, so a
# change to the request path can be judged without a quiet machine. The router runs
# under valgrind in front of one nginx backend (a small `200 ok`, 95/5 split): the
# `liftoff router` process, beside a daemon started with --no-local-router (valgrind
# does not follow the router that serve would start); for builds that route inside
# `liftoff serve` (no `router` command), serve itself. wrk
# sends WARMUP seconds of load, the counters are zeroed, then COUNT seconds are counted
# and divided by the requests wrk completed.
#
#   bench/router-instructions.sh
#   LIFTOFF_BASELINE=/path/to/older/liftoff bench/router-instructions.sh   # and another build
#
# Everything listens on 127.0.0.1; every process is started here and stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

WARMUP=${WARMUP:-3}
COUNT=${COUNT:-8}
CONNS=${CONNS:-64}

need=()
for cmd in nginx wrk valgrind curl; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk valgrind curl
fi

BENCH_NAME=instructions
# shellcheck source=bench/lib.sh
source bench/lib.sh

B1=$(port); B2=$(port)
start_backend "$B1" "$B2"
wait_port "$B1"; wait_port "$B2"

# One build under callgrind: prints instructions per request. Run in this shell, not in
# $(...), so that what it starts is in pids and routers if it fails.
count() {
  local name=$1 bin=$2
  local dir="$work/$name" api router
  api=$(port); router=$(port)
  mkdir -p "$dir"
  split_plan "$dir/plan.yaml" "$router" "$B1" "$B2"
  local vg daemon=
  if "$bin" router --help >/dev/null 2>&1; then
    RUST_LOG=warn "$bin" serve --no-local-router --listen "127.0.0.1:$api" --state-dir "$dir/state" \
      >"$dir/serve.log" 2>&1 &
    daemon=$!
    pids+=("$daemon")
    wait_port "$api"
    routers+=("$dir/router")
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
      "$bin" --server "http://127.0.0.1:$api" --state-dir "$dir/router" router \
      --token-file "$dir/state/router.token" --id bench --threads 1 >"$dir/log" 2>&1 &
    vg=$!
    pids+=("$vg")
    # A weight change needs a router's acknowledgement (within 2 s): the router must
    # be known to the daemon before the launch.
    for _ in $(seq 600); do
      curl -sf -H "Authorization: Bearer $(cat "$dir/state/admin.token")" "http://127.0.0.1:$api/api/v1/routers" |
        grep -q '"missing":false' && break
      sleep 0.1
    done
  else
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
      "$bin" serve --listen "127.0.0.1:$api" --state-dir "$dir/state" --router-threads 1 \
      >"$dir/log" 2>&1 &
    vg=$!
    pids+=("$vg")
    for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/"$api") 2>/dev/null && break; sleep 0.1; done
  fi
  LIFTOFF_SERVER="http://127.0.0.1:$api" LIFTOFF_STATE_DIR="$dir/state" "$bin" launch "$dir/plan.yaml" >/dev/null
  wait_port "$router"
  wrk -t1 -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:$router/" >/dev/null 2>&1
  callgrind_control -z "$vg" >/dev/null 2>&1
  wrk -t1 -c"$CONNS" -d"${COUNT}s" "http://127.0.0.1:$router/" >"$dir/wrk" 2>&1
  callgrind_control -d "$vg" >/dev/null 2>&1
  if grep -q "Non-2xx" "$dir/wrk"; then
    echo "$name: some requests failed; the count would not be of proxied requests" >&2
    return 1
  fi
  local requests instructions
  requests=$(awk '/requests in/{print $1}' "$dir/wrk")
  # The dump after zeroing is the second output file; its summary is what was counted.
  instructions=$(awk '/^summary:/{s+=$2} /^totals:/{t+=$2} END{print (s>0?s:t)}' "$dir"/callgrind.out.*)
  kill "$vg"; wait "$vg" 2>/dev/null || true
  if [ -n "$daemon" ]; then kill "$daemon"; wait "$daemon" 2>/dev/null || true; fi
  echo "$name $requests $instructions $((instructions / requests))"
}

echo "counting under callgrind, $CONNS connections, ${COUNT}s counted..." >&2
count liftoff "$LIFTOFF" >"$work/result.liftoff"
results=("$(cat "$work/result.liftoff")")
if [ -n "${LIFTOFF_BASELINE:-}" ]; then
  count baseline "$LIFTOFF_BASELINE" >"$work/result.baseline"
  results+=("$(cat "$work/result.baseline")")
fi

echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); $CONNS connections, ${COUNT}s under callgrind."
echo
echo "| build | requests | instructions | instructions/request |"
echo "|---|---:|---:|---:|"
for r in "${results[@]}"; do
  read -r name requests instructions per <<<"$r"
  printf '| %s | %s | %s | %s |\n' "$name" "$requests" "$instructions" "$per"
done
if [ "${#results[@]}" -gt 1 ]; then
  read -r _ _ _ a <<<"${results[0]}"
  read -r _ _ _ b <<<"${results[1]}"
  echo
  echo "liftoff/baseline instructions per request: $(python3 -c "print(f'{$a/$b:.2f}')")"
fi
