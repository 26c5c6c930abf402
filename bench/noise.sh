#!/usr/bin/env bash
# Triggers must not fire on noise (issue 18). Stable and candidate are both
# `liftoff demo-app --error-rate 0.02`; steady sticky load through the builtin router
# sends ~CANDIDATE_RPS requests/s to the candidate at the launch's 50% step; the trigger
# is `error_rate > 5% over 2s`, checked every CHECK_EVERY.
#
# A: AA_RUNS cold-start launches (each pins traffic to stable, moves it to 50%, holds
#    HOLD there, succeeds): counts rollbacks. Expected: none.
# B: BAD_RUNS launches with the candidate failing 30%: every one must be rolled back;
#    time to catch = from the 50% weight applied to traffic back on stable.
#
# demo-app fails a deterministic share (every 50th request at 2%), so A's windows are
# less noisy than independent failures would be; the driver's tests
# (crates/driver/src/analysis/tests.rs) run the same A/A with independent failures.
#
#   bench/noise.sh     AA_RUNS=50 BAD_RUNS=20 HOLD=5s CHECK_EVERY=100ms CANDIDATE_RPS=40 bench/noise.sh
#   CONFIDENCE=50% BAD_RUNS=0 bench/noise.sh   (`rollback.confidence: 50%`: the value alone,
#                                              the rule before issue 18)
#   LIFTOFF=/work/noise-target/release/liftoff bench/noise.sh   (a binary of your own)
set -euo pipefail
cd "$(dirname "$0")/.."
AA_RUNS=${AA_RUNS:-50}
BAD_RUNS=${BAD_RUNS:-20}
HOLD=${HOLD:-5s}
CHECK_EVERY=${CHECK_EVERY:-100ms}
CANDIDATE_RPS=${CANDIDATE_RPS:-40}
CONFIDENCE=${CONFIDENCE:-}

BENCH_NAME=noise
# shellcheck source=bench/lib.sh
source bench/lib.sh

# `liftoff load` has no rate limit: CONCURRENCY users each waiting LATENCY_MS per answer
# make the rate, half of it (the 50% step) the candidate's.
CONCURRENCY=16
LATENCY_MS=$((CONCURRENCY * 1000 / (2 * CANDIDATE_RPS)))

S=$(port); C=$(port); API=$(port); R=$(port)
"$LIFTOFF" demo-app --port "$S" --version 1 --error-rate 0.02 --latency-ms "$LATENCY_MS" >/dev/null 2>&1 & pids+=($!)
"$LIFTOFF" demo-app --port "$C" --version 2 --error-rate 0.02 --latency-ms "$LATENCY_MS" >/dev/null 2>&1 & pids+=($!)
RUST_LOG=warn "$LIFTOFF" serve --listen "127.0.0.1:$API" --state-dir "$work/state" --router-threads 1 >"$work/serve.log" 2>&1 & pids+=($!)
routers+=("$work/state/router") # the router process serve starts outlives it
wait_port "$S"; wait_port "$C"; wait_port "$API"
export LIFTOFF_SERVER="http://127.0.0.1:$API" LIFTOFF_STATE_DIR="$work/state"

# plan FILE STEPS: the 50% step, then STEPS; the trigger under test.
plan() {
  cat > "$1" <<CONF
version: 1
name: noise
service: noise
router: { kind: builtin, listen: "127.0.0.1:$R", stable: "http://127.0.0.1:$S", candidate: "http://127.0.0.1:$C", sticky: { header: X-User-Id } }
steps:
  - traffic: 50%
  - $2
rollback:
  on: ["error_rate > 5% over 2s"]
  check_every: $CHECK_EVERY
${CONFIDENCE:+  confidence: $CONFIDENCE}
CONF
}
plan "$work/aa.yaml" "pause: $HOLD"
plan "$work/bad.yaml" "pause: 30s"
plan "$work/calibrate.yaml" "pause: 12s"

status() { "$LIFTOFF" status "$1" --output json; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
wait_end() { until status "$1" | field 'd["terminal"]' | grep -q True; do sleep 0.1; done; }
# From the 50% weight applied to traffic back on stable, in seconds.
caught_after() {
  python3 -c '
import json, sys
from datetime import datetime
d = json.load(sys.stdin)
at = lambda t: datetime.fromisoformat(t[:26].rstrip("Z") + "+00:00").timestamp()
print("%.3f" % (at(d["rollback"][0]["ended_at"]) - at(d["steps"][0]["ended_at"])))'
}

"$LIFTOFF" load "http://127.0.0.1:$R/" --concurrency "$CONCURRENCY" >/dev/null 2>&1 & pids+=($!)

# The rate the candidate really gets: its last 10 s at 50%.
id=$("$LIFTOFF" launch "$work/calibrate.yaml")
until [ "$(status "$id" | field 'd["weight"]')" = 50.0 ]; do sleep 0.1; done
sleep 10.5
rate=$(status "$id" | field '[v["last_10s"]["requests"] / 10 for v in d["traffic"]["versions"] if v["version"] == "candidate"][0]')
wait_end "$id"
echo "candidate traffic at 50%: ${rate} requests/s (demo-app latency ${LATENCY_MS}ms, $CONCURRENCY users)" >&2

rolled=0
for run in $(seq "$AA_RUNS"); do
  id=$("$LIFTOFF" launch "$work/aa.yaml")
  wait_end "$id"
  s=$(status "$id" | field 'd["status"]')
  if [ "$s" != succeeded ]; then
    rolled=$((rolled + 1))
    echo "A/A launch $run: $s — $(status "$id" | field 'd["reason"]')" >&2
  fi
done
echo "A/A: $rolled of $AA_RUNS launches rolled back (candidate ~${rate} requests/s, both failing 2%, error_rate > 5% over 2s, check_every $CHECK_EVERY, confidence ${CONFIDENCE:-99.999% (default)}, $HOLD each)"

curl -s -X PUT -d 0.3 "http://127.0.0.1:$C/_demo/error-rate" >/dev/null
times=()
missed=0
for run in $(seq "$BAD_RUNS"); do
  id=$("$LIFTOFF" launch "$work/bad.yaml")
  wait_end "$id"
  s=$(status "$id")
  if [ "$(field 'd["status"]' <<<"$s")" != rolled-back ]; then
    missed=$((missed + 1))
    echo "30% launch $run: $(field 'd["status"]' <<<"$s")" >&2
    continue
  fi
  t=$(caught_after <<<"$s")
  times+=("$t")
  echo "30% launch $run: caught ${t}s after 50% — $(field 'd["reason"]' <<<"$s")" >&2
done
printf '%s\n' "${times[@]}" | python3 -c "
import statistics, sys
t = sorted(float(x) for x in sys.stdin if x.strip())
caught = f'median {statistics.median(t):.3f}s, max {max(t):.3f}s, min {min(t):.3f}s' if t else 'none'
print(f'candidate failing 30%: {len(t)} of $BAD_RUNS launches rolled back ($missed missed); from 50% to back on stable: {caught}')"
