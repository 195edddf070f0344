#!/usr/bin/env bash
# The one command that installs, builds and runs every test (unit, integration, cloud,
# browser). CI runs exactly this (.ci/run).
set -euo pipefail
usage() {
  cat <<'USAGE'
usage: scripts/test.sh [--no-setup] [-R REGEX] [--help]

Installs missing packages (scripts/setup.sh), builds (scripts/build.sh) and runs ctest.
  --no-setup   skip the package check
  -R REGEX     run only the tests whose name matches (ctest -R)
Test logs and artifacts (screenshots, agent logs) go to build/test-artifacts/.
USAGE
}
root=$(cd "$(dirname "$0")/.." && pwd)
setup=1
ctest_args=()
while (($#)); do
  case "$1" in
    --help|-h) usage; exit 0 ;;
    --no-setup) setup=0 ;;
    -R) ctest_args+=(-R "$2"); shift ;;
    *) echo "test.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
((setup)) && "$root/scripts/setup.sh"
"$root/scripts/check-format.sh"
"$root/scripts/build.sh"
build_dir=${BUILD_DIR:-$root/build}
cd "$build_dir"
ctest --output-on-failure --timeout 900 -j2 "${ctest_args[@]}"
