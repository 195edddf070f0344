#!/usr/bin/env bash
# Configures and builds lanesync into build/ (CMake + Ninja + ccache).
set -euo pipefail
usage() {
  cat <<'USAGE'
usage: scripts/build.sh [--sanitize | --tsan | --fuzz] [--target NAME]... [--help]

Builds build/lanesync and the test binaries. Warnings are errors when CI=true.
  --sanitize     build into build-asan/ with AddressSanitizer + UndefinedBehaviorSanitizer (GCC)
  --tsan         build into build-tsan/ with ThreadSanitizer (GCC)
  --fuzz         build the libFuzzer targets (tests/fuzz) into build-fuzz/ with clang 14
  --no-unity     build one of the three above per file (they are unity builds otherwise:
                 each target's sources compiled eight at a time as one translation unit)
  --target NAME  build only NAME (and what it needs); repeatable. Default: everything.
Environment: BUILD_DIR (default build, or the folder named above), CMAKE_BUILD_TYPE (default
RelWithDebInfo).
USAGE
}
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
extra=()
targets=()
# The checking builds are unity builds (CMakeLists.txt LANESYNC_UNITY) unless --no-unity.
checking=0
unity=ON
while (($#)); do
  case "$1" in
    --help|-h) usage; exit 0 ;;
    --sanitize) build_dir=${BUILD_DIR:-$root/build-asan}; extra+=(-DLANESYNC_SANITIZE=ON); checking=1 ;;
    --tsan) build_dir=${BUILD_DIR:-$root/build-tsan}; extra+=(-DLANESYNC_TSAN=ON); checking=1 ;;
    --fuzz)
      build_dir=${BUILD_DIR:-$root/build-fuzz}
      extra+=(-DLANESYNC_FUZZ=ON -DLANESYNC_TESTS=OFF -DCMAKE_CXX_COMPILER=clang++-14); checking=1 ;;
    --no-unity) unity=OFF ;;
    --target) targets+=("$2"); shift ;;
    *) echo "build.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
# ccache hits across clones of the repository (CI builds in a fresh clone each time).
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
# Four build folders (main, asan, tsan, fuzz) outgrow ccache's default 5 GB.
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-20G}
((checking)) && extra+=(-DLANESYNC_UNITY=$unity)
werror=OFF
[[ "${CI:-}" == "true" ]] && werror=ON
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" \
  -DLANESYNC_WERROR=$werror "${extra[@]}" >/dev/null
ninja -C "$build_dir" "${targets[@]}"
