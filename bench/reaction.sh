#!/usr/bin/env bash
# Reaction time of automatic rollback: steady load through the builtin router; the
# candidate switches to 50% errors; the trigger is `error_rate > 5% over 2s`
# (evaluated every second, the default). Measures from the error onset (the moment
# the candidate starts failing, an upper bound on "the first bad response") to the
# moment the router sends 100% of traffic to stable. RUNS runs; prints median and max.
#
#   bench/reaction.sh            RUNS=20 CHECK_EVERY=1s bench/reaction.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
CHECK_EVERY=${CHECK_EVERY:-1s}

BENCH_NAME=reaction
# shellcheck source=bench/lib.sh
source bench/lib.sh

S=$(port); C=$(port); API=$(port); R=$(port)
"$LIFTOFF" demo-app --port "$S" --version 1 >/dev/null 2>&1 & pids+=($!)
"$LIFTOFF" demo-app --port "$C" --version 2 >/dev/null 2>&1 & pids+=($!)
RUST_LOG=warn "$LIFTOFF" serve --listen "127.0.0.1:$API" --state-dir "$work/state" --router-threads 1 >"$work/serve.log" 2>&1 & pids+=($!)
routers+=("$work/state/router") # the router process serve starts outlives it
wait_port "$S"; wait_port "$C"; wait_port "$API"
export LIFTOFF_SERVER="http://127.0.0.1:$API" LIFTOFF_STATE_DIR="$work/state"
cat > "$work/plan.yaml" <<CONF
version: 1
name: reaction
service: reaction
router: { kind: builtin, listen: "127.0.0.1:$R", stable: "http://127.0.0.1:$S", candidate: "http://127.0.0.1:$C", sticky: { header: X-User-Id } }
steps:
  - traffic: 50%
  - approve: { role: bench }
rollback:
  on: ["error_rate > 5% over 2s"]
  check_every: $CHECK_EVERY
CONF

status() { "$LIFTOFF" status "$1" --output json; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

times=()
load_pid=
for run in $(seq "$RUNS"); do
  curl -s -X PUT -d 0 "http://127.0.0.1:$C/_demo/error-rate" >/dev/null
  id=$("$LIFTOFF" launch "$work/plan.yaml")
  until [ "$(status "$id" | field 'd["status"]')" = waiting-approval ]; do sleep 0.05; done
  if [ -z "$load_pid" ]; then
    "$LIFTOFF" load "http://127.0.0.1:$R/" --concurrency 8 >/dev/null 2>&1 & load_pid=$!; pids+=("$load_pid")
  fi
  sleep 2.5 # a clean 2 s window before the onset
  onset=$(python3 -c 'import time; print(time.time())')
  curl -s -X PUT -d 0.5 "http://127.0.0.1:$C/_demo/error-rate" >/dev/null
  until status "$id" | field 'd["terminal"]' | grep -q True; do sleep 0.05; done
  reverted=$(status "$id" | field 'd["rollback"][0]["ended_at"]')
  t=$(python3 -c "
from datetime import datetime
r = datetime.fromisoformat('$reverted'[:26].rstrip('Z') + '+00:00').timestamp()
print(f'{r - $onset:.3f}')")
  times+=("$t")
  echo "run $run: ${t}s" >&2
done
printf '%s\n' "${times[@]}" | python3 -c "
import statistics, sys
t = sorted(float(x) for x in sys.stdin)
print(f'reaction time over {len(t)} runs (check_every $CHECK_EVERY): median {statistics.median(t):.3f}s, max {max(t):.3f}s, min {min(t):.3f}s')"
