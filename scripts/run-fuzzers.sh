#!/usr/bin/env bash
# Runs every libFuzzer harness in DIR for SECONDS each, with its seed corpus from tests/fuzz/corpus/<name>.
# Prints one line per target: name, seconds run, executions, and whether it found anything.
set -uo pipefail
dir=${1:?usage: run-fuzzers.sh BUILD_FUZZ_DIR SECONDS}
seconds=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
for fuzzer in "$dir"/fuzz_*; do
    [[ -x "$fuzzer" ]] || continue
    name=$(basename "$fuzzer")
    short=${name#fuzz_}
    work=$(mktemp -d)
    seeds="$root/tests/fuzz/corpus/$short"
    corpus=("$work/corpus")
    mkdir -p "$work/corpus"
    [[ -d "$seeds" ]] && corpus+=("$seeds")
    log="$work/log.txt"
    ASAN_OPTIONS=detect_leaks=1 "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$work/" "${corpus[@]}" >"$log" 2>&1
    rc=$?
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    [[ -z "$execs" ]] && execs=$(grep -oE '#[0-9]+' "$log" | tail -1 | tr -d '#')
    if [[ $rc -eq 0 ]]; then
        echo "$name: ${seconds}s, ${execs:-?} executions, no finding"
    else
        echo "$name: FINDING (exit $rc) — artifacts and log in $work"
        tail -30 "$log"
        status=1
    fi
done
exit $status
