#!/usr/bin/env bash
# Fails when a tracked C/C++ file is not formatted with the root .clang-format.
set -euo pipefail
if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  echo "usage: scripts/check-format.sh   (clang-format --dry-run -Werror over every tracked C/C++ file)"
  exit 0
fi
cd "$(dirname "$0")/.."
git ls-files -z '*.cpp' '*.hpp' '*.h' | xargs -0 clang-format --dry-run -Werror
echo "check-format: every C/C++ file is formatted" >&2
