#!/usr/bin/env bash
# Restarts under load: no client request may fail while the daemon is restarted or
# killed, or while the router is replaced. A single-VM setup: `liftoff serve` and the
# local router it starts (a process of its own), a launch holding a 50% sticky split
# while it waits for approval, one nginx worker as stable and candidate. wrk (one
# thread, CONNS keep-alive connections, every request from one of 1000 sticky users,
# 2 s timeout) runs through the router for the whole of each phase:
#
#   steady   no restart, STEADY seconds (the control);
#   term     the daemon stopped (SIGTERM) and started again, RESTARTS times;
#   kill     the daemon killed (SIGKILL) and started again, RESTARTS times;
#   router   `liftoff router restart` (the successor takes the listening sockets, the
#            old router drains), RESTARTS times.
#
# A daemon restart is done when the new daemon has written serve.addr and
# GET /api/v1/routers shows the local router, not missing. Between restarts, PAUSE
# seconds. Prints, per phase, wrk's socket errors (connect, read, write, timeout) and
# its non-2xx responses, the responses that told wrk to close its connection (a draining
# router's `Connection: close`: wrk reconnects), and how long a restart took: for the
# daemon from the signal to ready again, for the router until the old one has drained
# and exited (what `liftoff router restart` waits for).
#
#   bench/restarts.sh        RESTARTS=20 CONNS=16 PAUSE=0.5 bench/restarts.sh
#
# Everything listens on 127.0.0.1; every process is started here and stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

RESTARTS=${RESTARTS:-20}
CONNS=${CONNS:-16}
PAUSE=${PAUSE:-0.5}
STEADY=${STEADY:-10}
PHASES=${PHASES:-"steady term kill router"}

need=()
for cmd in nginx wrk curl; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk curl
fi

BENCH_NAME=restarts
# shellcheck source=bench/lib.sh
source bench/lib.sh

B1=$(port); B2=$(port); API=$(port); R=$(port)
URL="http://127.0.0.1:$API"
STATE="$work/state"
export LIFTOFF_SERVER="$URL" LIFTOFF_STATE_DIR="$STATE"
start_backend "$B1" "$B2"
wait_port "$B1"; wait_port "$B2"

daemon=
start_daemon() {
  RUST_LOG=warn "$LIFTOFF" serve --listen "127.0.0.1:$API" --state-dir "$STATE" >>"$work/serve.log" 2>&1 &
  daemon=$!
  pids+=("$daemon")
}
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
# The new daemon listens, has written serve.addr, and hears from the local router.
wait_ready() {
  local until=$((SECONDS + 30))
  while [ "$SECONDS" -lt "$until" ]; do
    if [ -f "$STATE/serve.addr" ] &&
      curl -sf -H "Authorization: Bearer $(cat "$STATE/admin.token")" "$URL/api/v1/routers" 2>/dev/null | py 'print(any(r["id"] == "local" and not r["missing"] for r in d))' 2>/dev/null | grep -q True; then
      return 0
    fi
    sleep 0.02
  done
  echo "the daemon did not come back with its router within 30 s; see $work/serve.log" >&2
  return 1
}
now() { python3 -c 'import time; print(time.time())'; }

start_daemon
routers+=("$STATE/router")
wait_ready
cat >"$work/plan.yaml" <<CONF
version: 1
name: restarts
service: restarts
router: { kind: builtin, listen: "127.0.0.1:$R", stable: "http://127.0.0.1:$B1", candidate: "http://127.0.0.1:$B2", sticky: { header: X-User-Id } }
steps:
  - traffic: 50%
  - approve: { role: bench }
CONF
id=$("$LIFTOFF" launch "$work/plan.yaml")
until [ "$("$LIFTOFF" status "$id" --output json | py 'print(d["status"])')" = waiting-approval ]; do sleep 0.05; done
wait_port "$R"
first_router=$(router_pid "$STATE/router")

# One phase's restarts; prints how long each took (s), one a line.
restart_term() {
  local t0
  t0=$(now)
  kill "$daemon"; wait "$daemon" 2>/dev/null || true
  start_daemon; wait_ready
  python3 -c "import time; print(f'{time.time() - $t0:.3f}')"
}
restart_kill() {
  local t0
  t0=$(now)
  kill -9 "$daemon"; wait "$daemon" 2>/dev/null || true
  start_daemon; wait_ready
  python3 -c "import time; print(f'{time.time() - $t0:.3f}')"
}
restart_router() {
  local t0 before after
  before=$(router_pid "$STATE/router")
  t0=$(now)
  "$LIFTOFF" --state-dir "$STATE/router" router restart >>"$work/router-restart.log"
  after=$(router_pid "$STATE/router")
  if [ "$before" = "$after" ]; then echo "router restart: still pid $before" >&2; return 1; fi
  python3 -c "import time; print(f'{time.time() - $t0:.3f}')"
}

declare -A WRK TIMES
for phase in $PHASES; do
  echo "phase $phase..." >&2
  COUNT_CLOSE=1 wrk -t1 -c"$CONNS" -d3600s --timeout 2s -s bench/sticky-users.lua "http://127.0.0.1:$R/" >"$work/wrk.$phase" 2>&1 &
  load=$!
  pids+=("$load")
  sleep 1
  : >"$work/times.$phase"
  if [ "$phase" = steady ]; then
    sleep "$STEADY"
  else
    for _ in $(seq "$RESTARTS"); do
      "restart_$phase" >>"$work/times.$phase"
      sleep "$PAUSE"
    done
  fi
  sleep 1
  kill -INT "$load"; wait "$load" || true
  WRK[$phase]=$(python3 - "$work/wrk.$phase" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
req = int(re.search(r"(\d+) requests in", t).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
c, r, w, to = (int(x) for x in sock.groups()) if sock else (0, 0, 0, 0)
non2xx = int(re.search(r"Non-2xx or 3xx responses: (\d+)", t).group(1)) if "Non-2xx" in t else 0
closes = re.search(r"Connection: close responses: (\d+)", t).group(1)
print(req, f"{rps:.0f}", c, r, w, to, non2xx, c + r + w + to + non2xx, closes)
PY
)
  TIMES[$phase]=$(python3 -c "
import statistics, sys
t = [float(l) for l in open('$work/times.$phase') if l.strip()]
print(f'{len(t)} {statistics.median(t):.2f} {max(t):.2f}' if t else '0 - -')")
  echo "  $phase: requests req/s connect read write timeout non-2xx failed closes = ${WRK[$phase]}; restarts median max = ${TIMES[$phase]}" >&2
done

final=$("$LIFTOFF" status "$id" --output json | py 'print(d["status"], d["weight"])')
echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); wrk -t1 -c$CONNS --timeout 2s (keep-alive, sticky users) through the local router at a 50% split; $RESTARTS restarts per phase, ${PAUSE}s apart."
echo
echo "| phase | restarts | requests | req/s | connect | read | write | timeout | non-2xx | failed | \`Connection: close\` | restart median s | restart max s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for phase in $PHASES; do
  read -r req rps c r w to non2xx failed closes <<<"${WRK[$phase]}"
  read -r n med max <<<"${TIMES[$phase]}"
  echo "| $phase | $n | $req | $rps | $c | $r | $w | $to | $non2xx | $failed | $closes | $med | $max |"
done
echo
echo "The launch after all phases: $final (router pid $first_router at the start, $(router_pid "$STATE/router") at the end)."
