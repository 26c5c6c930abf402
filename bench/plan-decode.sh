#!/usr/bin/env bash
# Plan decoding time against plan size: the decoder itself (crates/plan/examples/decode.rs),
# in release, on plans of 1,000, 10,000 and 100,000 unnamed identical steps with the step
# and size caps lifted, best of RUNS; prints the time per step and the 100k/10k ratio
# (linear decoding: about 10×). Then the largest plans `liftoff validate` and the API
# accept: MAX_STEPS steps, and MAX_PLAN_BYTES of checklist items.
#
#   bench/plan-decode.sh            RUNS=10 STEPS="10000 100000" bench/plan-decode.sh
#
# No daemon, no ports: nothing to stop.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
STEPS=${STEPS:-"1000 10000 100000"}

echo "building the decode example (release)..." >&2
cargo build --release --locked -p liftoff-plan --example decode >&2
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
# shellcheck disable=SC2086 # STEPS is a list of sizes
"$target_dir/release/examples/decode" "$RUNS" $STEPS
