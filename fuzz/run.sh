#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 45) over its corpus, two at
# a time (FUZZ_JOBS). Fails if any target crashes, panics, times out (10 s on one input)
# or runs out of memory; prints the executions of each. The reproducer of a failure is
# left in fuzz/artifacts/<target>/ and the target's log in fuzz/logs/.
#
#   fuzz/run.sh [SECONDS]        build, then run every target (or FUZZ_TARGETS="a b")
#   fuzz/run.sh --merge          fold what runs found (fuzz/new-corpus/) into the corpus,
#                                keeping only inputs that add coverage
#   fuzz/run.sh --build          only build
#
# Inputs a run finds go to fuzz/new-corpus/<target>/ (not committed); the committed corpus
# in fuzz/corpus/<target>/ is only read.
#
# The build uses the flags `cargo fuzz build -O -a -s none` passes (cargo-fuzz 0.13), so
# `cargo fuzz run TARGET` reuses it; no cargo-fuzz install is needed here. No sanitizer:
# the code is safe Rust (the panics, overflows and bounds errors the targets look for
# need none), and ASan would halve the executions. RUSTC_BOOTSTRAP=1 because libfuzzer-sys
# and cargo-fuzz expect a nightly compiler.
set -euo pipefail
cd "$(dirname "$0")"

secs=45
merge=false
build_only=false
case "${1:-}" in
  --merge) merge=true ;;
  --build) build_only=true ;;
  "") ;;
  *[!0-9]*) echo "usage: fuzz/run.sh [SECONDS] | --merge | --build" >&2; exit 2 ;;
  *) secs=$1 ;;
esac
jobs=${FUZZ_JOBS:-2}
targets=${FUZZ_TARGETS:-$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^loyaltyd-fuzz$')}
triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=target/$triple/release

export RUSTC_BOOTSTRAP=1
flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
flags+=" -Cllvm-args=-simplifycfg-branch-fold-threshold=0 -Cllvm-args=-sanitizer-coverage-stack-depth"
flags+=" -Cdebug-assertions -Ccodegen-units=1"

started=$(date +%s)
RUSTFLAGS="$flags ${RUSTFLAGS:-}" cargo build --locked --release --target "$triple" \
  --config 'profile.release.debug="line-tables-only"' --bins
built=$(date +%s)
echo "fuzz targets built in $((built - started)) s"
$build_only && exit 0

# Inputs of at most this many bytes (journals and records from the golden files are
# larger than libFuzzer's default of 4096).
max_len() {
  case $1 in
    journal) echo 16384 ;;
    record | ruleset) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

if $merge; then
  for t in $targets; do
    [ -d "new-corpus/$t" ] || continue
    echo "== $t: merging new-corpus/$t into corpus/$t"
    "$bin_dir/$t" -merge=1 -max_len="$(max_len "$t")" "corpus/$t" "new-corpus/$t"
  done
  echo "done: review and commit fuzz/corpus/ (git add fuzz/corpus), then rm -r fuzz/new-corpus"
  exit 0
fi

mkdir -p logs
run_one() {
  local t=$1
  mkdir -p "new-corpus/$t" "artifacts/$t"
  local rc=0 dict=()
  [ -f "dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
  nice "$bin_dir/$t" "new-corpus/$t" "corpus/$t" "${dict[@]}" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
    -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"logs/$t.log" 2>&1 || rc=$?
  echo "$rc" >"logs/$t.rc"
}

for t in $targets; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  echo "== $t: ${secs} s"
  run_one "$t" &
done
wait

failed=()
printf '%-12s %12s %8s %10s\n' target executions exec/s new_units
for t in $targets; do
  rc=$(cat "logs/$t.rc" 2>/dev/null || echo 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "logs/$t.log" | tail -1)
  new=$(sed -n 's/^stat::new_units_added: *//p' "logs/$t.log" | tail -1)
  printf '%-12s %12s %8s %10s\n' "$t" "${execs:-?}" "${rate:-?}" "${new:-?}"
  if [ "$rc" != 0 ]; then failed+=("$t"); fi
done
echo "fuzzing took $(($(date +%s) - built)) s after the build"

if [ ${#failed[@]} -gt 0 ]; then
  for t in "${failed[@]}"; do
    echo "---- $t FAILED (exit $(cat "logs/$t.rc")); the end of fuzz/logs/$t.log:" >&2
    tail -40 "logs/$t.log" >&2
    ls "artifacts/$t" >&2
  done
  exit 1
fi
