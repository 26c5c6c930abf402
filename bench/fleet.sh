#!/usr/bin/env bash
# Fleet benchmark: one daemon (`liftoff serve --no-local-router`) and ROUTERS routers
# (`liftoff router`, each with its own state dir and one data-plane thread), all on this
# host, in front of two `liftoff demo-app` backends. The route listens on 127.0.0.1:0, so
# each router serves it on a port of its own (read from GET /api/v1/routers).
#
# 1. Weight changes: a launch of STEPS `traffic` steps alternating 20% and 10%, after
#    an approval. Each step's journal line says how long the fleet took to apply it
#    ("applied by 3 routers in 4.2 ms", up to the last router's acknowledgement; the
#    daemon starts that clock once it has saved the route, after publishing it). A
#    cross-check from the routers' own logs measures from publishing to the last
#    router serving it. Prints p50/p95/p99/max of the STEPS figures of each. Run twice:
#    with no traffic, then under load (one wrk per router, LOAD_CONNS connections each,
#    sticky users; both CPUs busy).
# 2. Trigger reaction across the fleet (REACTION_RUNS runs, as bench/reaction.sh for one
#    router): a 50% split, `liftoff load` through every router; the candidate starts
#    failing half its requests; trigger `error_rate > 5% over 2s` on the fleet's summed
#    figures. From the error onset to the end of `traffic back to stable` (every
#    router acknowledged 0%).
#
#   bench/fleet.sh          STEPS=100 REACTION_RUNS=5 ROUTERS=3 bench/fleet.sh
#
# Everything listens on 127.0.0.1; every process is started here and stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-100}
ROUTERS=${ROUTERS:-3}
REACTION_RUNS=${REACTION_RUNS:-5}
LOAD_CONNS=${LOAD_CONNS:-4}

need=()
for cmd in wrk curl; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk curl
fi

BENCH_NAME=fleet
# shellcheck source=bench/lib.sh
source bench/lib.sh

S=$(port); C=$(port); API=$(port)
URL="http://127.0.0.1:$API"
STATE="$work/state"
"$LIFTOFF" demo-app --port "$S" --version 1 >/dev/null 2>&1 & pids+=($!)
"$LIFTOFF" demo-app --port "$C" --version 2 >/dev/null 2>&1 & pids+=($!)
RUST_LOG=warn "$LIFTOFF" serve --no-local-router --listen "127.0.0.1:$API" --state-dir "$STATE" \
  >"$work/serve.log" 2>&1 & pids+=($!)
wait_port "$S"; wait_port "$C"; wait_port "$API"
export LIFTOFF_SERVER="$URL" LIFTOFF_STATE_DIR="$STATE"

for i in $(seq "$ROUTERS"); do
  RUST_LOG=info "$LIFTOFF" --server "$URL" --state-dir "$work/router$i" router \
    --token-file "$STATE/router.token" --id "router$i" --threads 1 >"$work/router$i.log" 2>&1 &
  pids+=($!); routers+=("$work/router$i")
done

api() { curl -sf -H "Authorization: Bearer $(cat "$STATE/admin.token")" "$URL$1"; }
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
# The routers the daemon hears from.
live_routers() { api /api/v1/routers | py 'print(sum(1 for r in d if not r["missing"]))'; }
# Each router's port for the (only) route, one a line.
router_ports() { api /api/v1/routers | py 'print("\n".join(r["listening"][0].rsplit(":",1)[1] for r in d if r["listening"]))'; }
status() { "$LIFTOFF" status "$1" --output json; }
wait_status() { # id, status
  local now
  until now=$(status "$1" | py 'print(d["status"], d["terminal"])') && [ "${now% *}" = "$2" ]; do
    [ "${now#* }" = True ] && { echo "launch $1 ended $now, never $2" >&2; exit 1; }
    sleep 0.05
  done
}
wait_terminal() {
  until status "$1" | py 'print(d["terminal"])' | grep -q True; do sleep 0.05; done
}

for _ in $(seq 200); do [ "$(live_routers)" = "$ROUTERS" ] && break; sleep 0.05; done
[ "$(live_routers)" = "$ROUTERS" ] || { echo "only $(live_routers) of $ROUTERS routers joined" >&2; exit 1; }

router_line='router: { kind: builtin, listen: "127.0.0.1:0", stable: "http://127.0.0.1:'$S'", candidate: "http://127.0.0.1:'$C'", sticky: { header: X-User-Id } }'
{
  echo "version: 1"
  echo "name: fleet-steps"
  echo "service: fleet"
  echo "$router_line"
  echo "steps:"
  echo "  - traffic: 10%"
  echo "  - approve: { role: bench }"
  for i in $(seq "$STEPS"); do
    if [ $((i % 2)) = 1 ]; then echo "  - traffic: 20%"; else echo "  - traffic: 10%"; fi
  done
} >"$work/steps.yaml"

# The weight changes after the approval. Two figures per change, one change a line in
# $2 and $3:
# - the journal's ("applied by 3 routers in X ms"): "ms routers missing" ("-": none);
# - a cross-check from the routers' logs: a snapshot's version is the Unix time in ms at
#   which the daemon published it (while changes are more than 1 ms apart), and each
#   router logs "snapshot applied version=V" when it serves it: "ms routers", from V to
#   the last router's line.
applied_figures() {
  api "/api/v1/launches/$1/journal" >"$work/journal.$1.json"
  python3 - "$work/journal.$1.json" "$2" "$3" "$work"/router*.log <<'PY'
import json, re, sys
from datetime import datetime
journal, out_journal, out_logs, logs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
entries = json.load(open(journal))
def ms(at):
    return datetime.fromisoformat(at[:26].rstrip("Z") + "+00:00").timestamp() * 1000
approved = next(e for e in entries if e["kind"] == "approved")
ended = next(e for e in entries if e["kind"] == "launch_ended")
with open(out_journal, "w") as out:
    for e in entries:
        if e["kind"] != "step_finished" or e["seq"] < approved["seq"]:
            continue
        m = re.search(r"candidate weight set to [\d.]+% \(.*; applied by (\d+) routers in ([\d.]+) ms(; missing: (.*))?\)", e["summary"])
        m1 = re.search(r"candidate weight set to [\d.]+% \(.*; applied by router (\S+) in ([\d.]+) ms(; missing: (.*))?\)", e["summary"])
        if m:
            print(m.group(2), m.group(1), (m.group(4) or "-").replace(" ", ""), file=out)
        elif m1:
            print(m1.group(2), 1, (m1.group(4) or "-").replace(" ", ""), file=out)
        elif "candidate weight set to" in e["summary"]:
            print("weight change without a figure:", e["summary"], file=sys.stderr)
applied = {}  # version -> [ms at which each router logged it]
line = re.compile(r"^(\S+Z)\s+INFO\s+liftoff_router::control: snapshot applied version=(\d+)")
for path in logs:
    for l in open(path):
        m = line.match(re.sub(r"\x1b\[[0-9;]*m", "", l))
        if m:
            applied.setdefault(int(m.group(2)), []).append(ms(m.group(1)))
lo, hi = ms(approved["at"]), ms(ended["at"])
with open(out_logs, "w") as out:
    for v in sorted(applied):
        if lo <= v <= hi:
            print(f"{max(applied[v]) - v:.1f}", len(applied[v]), file=out)
PY
}

# One launch of the weight-change plan; $1: idle or loaded. Leaves its figures in
# $work/figures.$1 (journal) and $work/logs.$1 (router logs).
weight_run() {
  local mode=$1 id wrks=()
  id=$("$LIFTOFF" launch "$work/steps.yaml")
  wait_status "$id" waiting-approval
  if [ "$mode" = loaded ]; then
    for p in $(router_ports); do
      wrk -t1 -c"$LOAD_CONNS" -d600s -s bench/sticky-users.lua "http://127.0.0.1:$p/" >"$work/wrk.$p" 2>&1 &
      wrks+=($!); pids+=($!)
    done
    sleep 2
  fi
  "$LIFTOFF" approve "$id" --as bench --by bench >/dev/null
  wait_terminal "$id"
  for w in "${wrks[@]}"; do kill -INT "$w"; wait "$w" || true; done
  [ "$(status "$id" | py 'print(d["status"])')" = succeeded ] || { echo "$mode launch $id: $(status "$id" | py 'print(d["status"], d["reason"])')" >&2; exit 1; }
  applied_figures "$id" "$work/figures.$mode" "$work/logs.$mode"
  if [ "$mode" = loaded ]; then
    cat "$work"/wrk.* | python3 -c '
import re, sys
t = sys.stdin.read()
req = sum(int(x) for x in re.findall(r"(\d+) requests in", t))
rps = sum(float(x) for x in re.findall(r"Requests/sec:\s+([\d.]+)", t))
bad = "; ".join(re.findall(r"(Non-2xx or 3xx responses: \d+|Socket errors: .*)", t)) or "no errors"
print(f"load: {req} requests, {rps:.0f} req/s over the routers; {bad}", file=sys.stderr)'
  fi
}

# A table row: the figures in file $2, for traffic $1; $3: the figure's source.
summary() {
  python3 - "$2" "$1" "$STEPS" "$ROUTERS" "$3" <<'PY'
import math, sys
path, mode, steps, routers, source = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = [l.split() for l in open(path) if l.strip()]
ms = sorted(float(r[0]) for r in rows)
short = [r for r in rows if r[1] != routers or (len(r) > 2 and r[2] != "-")]  # missing ones
def pct(p):  # nearest rank
    return ms[max(0, math.ceil(p / 100 * len(ms)) - 1)]
if len(ms) != steps:
    print(f"{mode}, {source}: {len(ms)} changes, expected {steps}", file=sys.stderr)
print(f"| {mode} | {source} | {len(ms)} | {pct(50):.1f} | {pct(95):.1f} | {pct(99):.1f} | {ms[-1]:.1f} | {ms[0]:.1f} | {len(short)} |")
PY
}

echo "weight changes: $STEPS steps over $ROUTERS routers, idle..." >&2
weight_run idle
echo "... and under load" >&2
weight_run loaded

# Trigger reaction across the fleet.
cat >"$work/reaction.yaml" <<CONF
version: 1
name: fleet-reaction
service: fleet
$router_line
steps:
  - traffic: 50%
  - approve: { role: bench }
rollback:
  on: ["error_rate > 5% over 2s"]
CONF
reaction=()
for run in $(seq "$REACTION_RUNS"); do
  curl -s -X PUT -d 0 "http://127.0.0.1:$C/_demo/error-rate" >/dev/null
  id=$("$LIFTOFF" launch "$work/reaction.yaml")
  wait_status "$id" waiting-approval
  loads=()
  for p in $(router_ports); do
    "$LIFTOFF" load "http://127.0.0.1:$p/" --concurrency 3 >/dev/null 2>&1 & loads+=($!); pids+=($!)
  done
  sleep 2.5 # a clean 2 s window before the onset
  onset=$(python3 -c 'import time; print(time.time())')
  curl -s -X PUT -d 0.5 "http://127.0.0.1:$C/_demo/error-rate" >/dev/null
  wait_terminal "$id"
  for l in "${loads[@]}"; do kill "$l"; wait "$l" 2>/dev/null || true; done
  line=$(status "$id" | python3 -c "
import json, sys
from datetime import datetime
d = json.load(sys.stdin)
back = d['rollback'][0]
r = datetime.fromisoformat(back['ended_at'][:26].rstrip('Z') + '+00:00').timestamp()
print(f'{r - $onset:.3f}', d['status'], (back.get('message') or '').replace(' ', '_'))")
  reaction+=("$line")
  echo "reaction run $run: $line" >&2
done

echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); $ROUTERS routers (one thread each), one daemon, two demo-app backends, all on this host."
echo
echo "Weight changes: how long until every router serves the new split, ms:"
echo
echo "| traffic | figure | changes | p50 | p95 | p99 | max | min | not applied by all |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for mode in idle loaded; do
  summary "$mode" "$work/figures.$mode" "journal (from after the route is saved to the last ack)"
  summary "$mode" "$work/logs.$mode" "router logs (from publishing to the last router applying)"
done
echo
printf '%s\n' "${reaction[@]}" | python3 -c "
import statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
t = sorted(float(r[0]) for r in rows)
statuses = sorted(set(r[1] for r in rows))
print(f'Trigger reaction across the fleet ({len(t)} runs, error_rate > 5% over 2s, check_every 1s): median {statistics.median(t):.3f} s, max {max(t):.3f} s, min {min(t):.3f} s; launches ended {\", \".join(statuses)}')
print('traffic back to stable, per run: ' + '; '.join(r[2].replace('_', ' ').split('; ', 1)[-1].rstrip(')') for r in rows))"
