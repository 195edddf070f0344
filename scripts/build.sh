#!/usr/bin/env bash
# Configures and builds lanesync into build/ (CMake + Ninja + ccache).
set -euo pipefail
usage() {
  cat <<'USAGE'
usage: scripts/build.sh [--sanitize] [--help]

Builds build/lanesync and the test binaries. Warnings are errors when CI=true.
  --sanitize   build into build-asan/ with AddressSanitizer + UndefinedBehaviorSanitizer
Environment: BUILD_DIR (default build), CMAKE_BUILD_TYPE (default RelWithDebInfo).
USAGE
}
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
extra=()
for a in "$@"; do
  case "$a" in
    --help|-h) usage; exit 0 ;;
    --sanitize) build_dir=${BUILD_DIR:-$root/build-asan}; extra+=(-DLANESYNC_SANITIZE=ON) ;;
    *) echo "build.sh: unknown option $a" >&2; usage >&2; exit 2 ;;
  esac
done
# ccache hits across clones of the repository (CI builds in a fresh clone each time).
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
werror=OFF
[[ "${CI:-}" == "true" ]] && werror=ON
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" \
  -DLANESYNC_WERROR=$werror "${extra[@]}" >/dev/null
ninja -C "$build_dir"
