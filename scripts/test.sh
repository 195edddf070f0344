#!/usr/bin/env bash
# The one command that installs, builds and runs every test (unit, integration, cloud,
# browser), then the same tests under the sanitizers and the fuzz targets briefly. CI runs
# exactly this (.ci/run). docs/testing.md describes each stage.
set -euo pipefail
usage() {
  cat <<'USAGE'
usage: scripts/test.sh [--no-setup] [-R REGEX] [--all-stages] [--no-sanitizers] [--no-fuzz] [--stage S]...
                       [--help]

Installs missing packages (scripts/setup.sh), builds (scripts/build.sh) and runs every stage (what
CI runs), each in its own build folder; --stage S runs only the stages named:
  main   ctest in build/: every test
  asan   build-asan/ (GCC, AddressSanitizer + UndefinedBehaviorSanitizer): the unit tests, the
         integration tests (with that build's lanesync) and a harness subset
  tsan   build-tsan/ (GCC, ThreadSanitizer): the outbox, lanes and cloud unit tests
  fuzz   build-fuzz/ (clang 14, libFuzzer): each fuzz target for 20 s (scripts/fuzz.sh --ci)
A sanitizer finding fails the test that hit it (UBSan halts on the first error).
  --no-setup        skip the package check
  -R REGEX          run only the tests whose name matches (ctest -R), in the main stage only
                    (the other stages are skipped)
  --all-stages      all four stages (the default; kept for scripts that pass it)
  --no-sanitizers   skip the asan and tsan stages (quicker local runs)
  --no-fuzz         skip the fuzz stage
  --stage S         run only stage S (repeatable): main, asan, tsan, fuzz
Test logs and artifacts (screenshots, agent logs) go to build/test-artifacts/ (build-asan/... for
the asan stage). Each stage prints its wall time.
USAGE
}
root=$(cd "$(dirname "$0")/.." && pwd)
setup=1
ctest_args=()
all_stages=(main asan tsan fuzz)
stages=("${all_stages[@]}")
chosen=()
skip=()
while (($#)); do
  case "$1" in
    --help|-h) usage; exit 0 ;;
    --no-setup) setup=0 ;;
    -R) ctest_args+=(-R "$2"); skip+=(asan tsan fuzz); shift ;;
    --all-stages) chosen+=("${all_stages[@]}") ;;
    --no-sanitizers) skip+=(asan tsan) ;;
    --no-fuzz) skip+=(fuzz) ;;
    --stage)
      [[ " ${all_stages[*]} " == *" $2 "* ]] || { echo "test.sh: unknown stage $2" >&2; exit 2; }
      chosen+=("$2"); shift ;;
    *) echo "test.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
((${#chosen[@]})) && stages=("${chosen[@]}")
wanted() { [[ " ${stages[*]} " == *" $1 "* && " ${skip[*]-} " != *" $1 "* ]]; }

# The asan stage: the unit and integration tests without the package, browser and benchmark
# ones (those add minutes and no code path of their own), and the harness with three scenarios.
asan_tests='^(unit\..*|integration\.(peers|peer_protocol|api_cli|api_wait|lanes_lib|init_store|rebuild|takeover|cloud|observability)|harness\.quick)$'
asan_harness='--scenario steady,lane-crash,disk-loss'
unit_targets=(test_protocol test_conf test_outbox test_lanes test_cloud test_agent)
tsan_targets=(test_outbox test_lanes test_cloud)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

stage_start=0
begin() { echo "test: stage $1" >&2; stage_start=$SECONDS; }
end() { echo "test: stage $1 took $((SECONDS - stage_start)) s" >&2; }

((setup)) && "$root/scripts/setup.sh"
"$root/scripts/check-format.sh"
if wanted main; then
  begin main
  "$root/scripts/build.sh"
  (cd "${BUILD_DIR:-$root/build}" && ctest --output-on-failure --timeout 900 -j2 "${ctest_args[@]}")
  end main
fi
if wanted asan; then
  begin asan
  targets=()
  for t in lanesync "${unit_targets[@]}"; do targets+=(--target "$t"); done
  BUILD_DIR=$root/build-asan "$root/scripts/build.sh" --sanitize "${targets[@]}"
  (cd "$root/build-asan" && HARNESS_ARGS=$asan_harness \
    ctest --output-on-failure --timeout 900 -j2 -R "$asan_tests")
  end asan
fi
if wanted tsan; then
  begin tsan
  targets=()
  for t in "${tsan_targets[@]}"; do targets+=(--target "$t"); done
  BUILD_DIR=$root/build-tsan "$root/scripts/build.sh" --tsan "${targets[@]}"
  (cd "$root/build-tsan" && ctest --output-on-failure --timeout 900 -j2 -R '^unit\.(outbox|lanes|cloud)$')
  end tsan
fi
if wanted fuzz; then
  begin fuzz
  BUILD_DIR=$root/build-fuzz "$root/scripts/fuzz.sh" --ci
  end fuzz
fi
