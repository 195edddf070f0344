#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang 14, build-fuzz/) and runs them on their seed
# corpus. docs/testing.md says what each target covers and how to turn a crash into a test.
set -euo pipefail
usage() {
  cat <<'USAGE'
usage: scripts/fuzz.sh [--minutes N | --seconds N | --ci] [--target T]... [--no-build] [--help]

Runs each fuzz target in turn for the time given (default: 1 minute each).
  --minutes N   run each target for N minutes
  --seconds N   run each target for N seconds
  --ci          the CI form: every target for 20 s (2 minutes in all), then stop
  --target T    run only target T (repeatable): conf_env publish frames peer_machine api_routes
                cloud_wire
  --no-build    use the binaries already in build-fuzz/fuzz/
Inputs that grew coverage go to build-fuzz/corpus/<target>/ (the committed seeds in
tests/fuzz/corpus/<target>/ are read, never written). A crash, leak, timeout or broken property
stops that target; the input is saved as build-fuzz/crashes/<target>/crash-<sha1> (or leak-,
timeout-, oom-) and the run exits 1 after the other targets ran. Replay one with
  build-fuzz/fuzz/fuzz_<target> build-fuzz/crashes/<target>/crash-<sha1>
USAGE
}
root=$(cd "$(dirname "$0")/.." && pwd)
all_targets=(conf_env publish frames peer_machine api_routes cloud_wire)
seconds=60
build=1
targets=()
while (($#)); do
  case "$1" in
    --help|-h) usage; exit 0 ;;
    --minutes) seconds=$(($2 * 60)); shift ;;
    --seconds) seconds=$2; shift ;;
    --ci) seconds=20 ;;
    --target)
      [[ " ${all_targets[*]} " == *" $2 "* ]] || { echo "fuzz.sh: unknown target $2" >&2; exit 2; }
      targets+=("$2"); shift ;;
    --no-build) build=0 ;;
    *) echo "fuzz.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
((${#targets[@]})) || targets=("${all_targets[@]}")
out=${BUILD_DIR:-$root/build-fuzz}
if ((build)); then
  build_args=()
  for t in "${targets[@]}"; do build_args+=(--target "fuzz_$t"); done
  BUILD_DIR=$out "$root/scripts/build.sh" --fuzz "${build_args[@]}"
fi

# Sanitizer findings must stop the input that caused them (libFuzzer then saves it).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
command -v llvm-symbolizer >/dev/null || [[ ! -x /usr/bin/llvm-symbolizer-14 ]] ||
  export ASAN_SYMBOLIZER_PATH=/usr/bin/llvm-symbolizer-14

run_one() {
  local t=$1 log=$out/fuzz-logs/$1.log
  mkdir -p "$out/corpus/$t" "$out/crashes/$t" "$out/fuzz-logs"
  # -timeout: one input over 10 s is a finding; -rss_limit_mb: over 2 GiB is one too.
  if "$out/fuzz/fuzz_$t" "$out/corpus/$t" "$root/tests/fuzz/corpus/$t" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="$out/crashes/$t/" -print_final_stats=1 >"$log" 2>&1; then
    echo "fuzz: $t: ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" |
      grep -o '[0-9]*$') runs in ${seconds}s, corpus $(find "$out/corpus/$t" -type f | wc -l))"
  else
    echo "fuzz: $t: FINDING (log: $log)" >&2
    grep -E 'ERROR: |SUMMARY: |property failed|Test unit written' "$log" | head -n 8 >&2
    return 1
  fi
}

failed=()
for t in "${targets[@]}"; do run_one "$t" || failed+=("$t"); done
if ((${#failed[@]})); then
  echo "fuzz: findings in ${failed[*]}; inputs in $out/crashes/" >&2
  exit 1
fi
