#!/usr/bin/env bash
# Stops the local cloud started by scripts/cloud-up.sh. See --help.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/cloud-down.sh [--functions-only | --db-only] [--purge] [--help]

Stops the local lanesync cloud of $CLOUD_DIR (default <repo>/.cloud): the edge function
(SIGTERM, so in-flight requests finish; SIGKILL after 15 s) and PostgreSQL
(pg_ctl stop -m fast). Data, keys and certificates stay, so scripts/cloud-up.sh brings
back the same cloud with the same SUPABASE_* lines. Safe to run when nothing runs.

Options:
  --functions-only  stop only the function; PostgreSQL keeps running (cloud outage test:
                    lanes get connection errors)
  --db-only         stop only PostgreSQL; the function keeps answering, with 503
                    (database outage test)
  --purge           after stopping everything, delete $CLOUD_DIR: data, keys, certificates,
                    logs (cloud/local/node_modules is kept)
  -h, --help        this text

scripts/cloud-up.sh restarts whatever is down.
EOF
}

only=''
purge=0
for arg in "$@"; do
  case $arg in
    --functions-only) only=functions ;;
    --db-only) only=db ;;
    --purge) purge=1 ;;
    -h | --help) usage; exit 0 ;;
    *) printf 'cloud-down.sh: unknown argument: %s (see --help)\n' "$arg" >&2; exit 2 ;;
  esac
done
if [ "$purge" = 1 ] && [ -n "$only" ]; then
  printf 'cloud-down.sh: --purge stops everything; it cannot be combined with --%s-only\n' "$only" >&2
  exit 2
fi

# shellcheck source=../cloud/local/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../cloud/local/lib.sh"

dir=${CLOUD_DIR:-$REPO/.cloud}
if ! [ -d "$dir" ]; then
  log "nothing to stop: $dir does not exist"
  exit 0
fi
cloud_paths "$dir"
if ! [ -e "$MARKER" ]; then
  # Not made by cloud-up.sh: nothing of ours runs there, and it is not ours to delete.
  [ "$purge" = 0 ] || die "$CLOUD_DIR is not a lanesync local cloud folder (no $(basename "$MARKER")); refusing to delete it"
  log "nothing to stop: $CLOUD_DIR is not a lanesync local cloud folder"
  exit 0
fi
take_lock

if [ "$only" != db ]; then stop_function; fi
if [ "$only" != functions ] && [ -f "$PGDATA/PG_VERSION" ]; then
  find_pg_bindir
  stop_postgres
fi

if [ "$purge" = 1 ]; then
  log "deleting $CLOUD_DIR"
  rm -rf "$CLOUD_DIR"
fi
log "stopped${only:+ ($only only)}"
