#!/usr/bin/env bash
# Installs what lanesync needs on Debian 12 (run as root, or with sudo available).
# Skips apt-get entirely when every package is already installed.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/setup.sh [--help]

Installs the Debian packages lanesync builds and tests with: compiler, CMake, Ninja, ccache,
Boost 1.81 (Asio/Beast), SQLite, OpenSSL, nlohmann-json, doctest, CLI11, PostgreSQL 15 with pg_cron
(local cloud), Node.js + npm (Deno from npm), Chromium (dashboard test), Python 3 with
prometheus-client (metrics test), dpkg-dev + lintian + systemd + file (the Debian package and
its unit: scripts/package.sh, integration.package), clang 14 + libclang-rt-14-dev (libFuzzer
and the sanitizer runtimes: scripts/fuzz.sh) + llvm-14 (llvm-symbolizer for readable fuzzer
reports). Safe to run again.
USAGE
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

packages=(
  build-essential cmake ninja-build ccache pkg-config clang-format
  libboost1.81-dev libsqlite3-dev libssl-dev nlohmann-json3-dev doctest-dev libcli11-dev
  sqlite3 openssl ca-certificates
  postgresql postgresql-contrib postgresql-15-cron
  chromium
  python3 python3-prometheus-client
  procps psmisc iproute2 curl
  dpkg-dev lintian systemd file
  clang-14 libclang-rt-14-dev llvm-14
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js + npm (for Deno from npm): any installation will do. Machines that carry Node.js from
# elsewhere (e.g. NodeSource) must not get Debian's npm, which conflicts with it.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all Debian packages present" >&2
fi
