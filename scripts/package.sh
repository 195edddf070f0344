#!/usr/bin/env bash
# Builds the Debian package build/lanesync_<version>-1_<arch>.deb (CPack, cmake/packaging.cmake).
set -euo pipefail
usage() {
  cat <<'USAGE'
usage: scripts/package.sh [--lintian] [--help]

Builds lanesync (scripts/build.sh, or the configured BUILD_DIR as it is) and packs build/lanesync_<version>-1_<arch>.deb with CPack:
/usr/bin/lanesync, the systemd unit lanesync@.service, the edge functions and migrations under
/usr/share/lanesync/supabase/, docs and an example env file under /usr/share/doc/lanesync/.
Dependencies come from dpkg-shlibdeps (Debian package dpkg-dev). Prints the .deb's path.
  --lintian   also run lintian on it (Debian package lintian; the remaining tags are
              explained in docs/configuration.md, "The Debian package")
Environment: BUILD_DIR (default build).
USAGE
}
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
lintian=0
for a in "$@"; do
  case "$a" in
    --help|-h) usage; exit 0 ;;
    --lintian) lintian=1 ;;
    *) echo "package.sh: unknown option $a" >&2; usage >&2; exit 2 ;;
  esac
done
command -v dpkg-shlibdeps >/dev/null || { echo "package.sh: dpkg-shlibdeps missing (apt-get install dpkg-dev)" >&2; exit 1; }
# A configured build folder is brought up to date as it is (with its own flags: CI's -Werror
# build is not rebuilt without it); a new one is made by scripts/build.sh.
if [ -f "$build_dir/build.ninja" ]; then
  cmake --build "$build_dir" --target lanesync lanesync_changelog >&2
else
  BUILD_DIR=$build_dir "$root/scripts/build.sh" >&2
fi
cd "$build_dir"
rm -f lanesync_*.deb
cpack -G DEB >&2 || { echo "package.sh: cpack failed" >&2; exit 1; }
debs=(lanesync_*.deb)
[ -f "${debs[0]}" ] || { echo "package.sh: cpack made no lanesync_*.deb" >&2; exit 1; }
deb=$build_dir/${debs[0]}
if ((lintian)); then
  # Exit status 0 with tags printed: the tags themselves are judged by docs and tests.
  lintian --tag-display-limit 0 --info "$deb" >&2 || true
fi
printf '%s\n' "$deb"
