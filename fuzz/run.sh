#!/usr/bin/env bash
# Run every fuzz target for a bounded time, one after another, and print what each did:
#
#   fuzz/run.sh [seconds-per-target]        (default 60)
#
# Per target: executions, executions per second, libFuzzer's coverage figures from its
# last status line (`cov:` edges, `ft:` features), the corpus size, and whether it found
# a crash, a hang (-timeout=5) or an out-of-memory (-rss_limit_mb=2048); what it found
# is in fuzz/artifacts/<target>/. New inputs are kept in fuzz/corpus/<target>/ (only
# the committed `seed-*` files are tracked), so each run starts where the last ended.
#
# Only a stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets it take cargo-fuzz's
# nightly flags. FUZZ_SANITIZER=none runs without AddressSanitizer (faster; Rust code
# needs it little). FUZZ_TARGETS="a b" runs only those targets.
set -uo pipefail

secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
sanitizer=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1
cd "$root" || exit 1

if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked || exit 1
fi
# -a: debug assertions and overflow checks, as in the tests.
build=(-a -s "$sanitizer")
cargo fuzz build "${build[@]}" || exit 1

plan_dict() {
    grep -oE '"[a-z_]+"' crates/plan/src/schema.rs | sort -u | sed -E 's/"(.*)"/"\1: "/'
    printf '"%s"\n' '${' '$${' '- ' '&a ' '*a' '<<: ' '---' '!!str ' '{ ' '[ ' ', ' \
        '5%' '500ms' '5m' 'http://127.0.0.1:9000' 'builtin' 'prometheus' 'error_rate' \
        'p95' 'stable.' ' over ' ' for ' '>= '
}

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
mkdir -p "$here/logs"
summary=$(printf '%-14s %6s %12s %8s %7s %8s %7s  %s' \
    target secs execs exec/s cov ft corpus result)
failed=0
for t in $targets; do
    mkdir -p "fuzz/corpus/$t"
    extra=()
    if [ "$t" = plan_parse ]; then
        # The example plans seed the plan loader too, read in place; a dictionary of
        # every plan key (from the schema) and a little YAML helps it write plans.
        plan_dict >"$here/logs/plan.dict"
        extra=(examples -- -dict="$here/logs/plan.dict")
    else
        extra=(--)
    fi
    log="$here/logs/$t.log"
    started=$(date +%s)
    cargo fuzz run "${build[@]}" "$t" "fuzz/corpus/$t" "${extra[@]}" \
        -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1
    status=$?
    took=$(($(date +%s) - started))
    last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -n 1)
    field() { sed -nE "s/.* $1: ([0-9]+).*/\1/p" <<<"$last"; }
    stat() { sed -nE "s/^stat::$1: *([0-9]+).*/\1/p" "$log" | tail -n 1; }
    execs=$(stat number_of_executed_units)
    [ -n "$execs" ] || execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
    rate=$(stat average_exec_per_sec)
    corpus=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$last")
    if [ "$status" -eq 0 ]; then
        result=ok
    elif grep -q 'failed to build fuzz script' "$log"; then
        failed=1
        result="BUILD FAILED: see $log"
    else
        failed=1
        artifact=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -n 1)
        result="FOUND (exit $status): ${artifact:-see $log}"
    fi
    line=$(printf '%-14s %6s %12s %8s %7s %8s %7s  %s' "$t" "$took" "${execs:-?}" \
        "${rate:-?}" "$(field cov)" "$(field ft)" "${corpus:-?}" "$result")
    echo "$line"
    summary+=$'\n'"$line"
done
echo
echo "$(date -u +%Y-%m-%d) sanitizer=$sanitizer, logs in fuzz/logs/"
echo "$summary"
exit "$failed"
