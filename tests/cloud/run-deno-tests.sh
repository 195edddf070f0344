#!/usr/bin/env bash
# The cloud test entry point (ctest calls it): a throwaway local cloud on free ports, the
# Deno tests of cloud/supabase/functions (sync-pos-message, sync-pull, _shared) against it,
# then teardown.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: tests/cloud/run-deno-tests.sh [--help] [DENO_TEST_ARG...]

Starts a local cloud (scripts/cloud-up.sh) in a temporary CLOUD_DIR on free ports, runs
  1. every *.test.ts of cloud/supabase/functions/sync-pos-message and .../sync-pull
     (validation and handler unit tests, and the integration tests against the served
     functions and PostgreSQL: for sync-pull also the concurrent-writers proof; for
     sync-pos-message also scripts/store-report.sh) and of
     cloud/supabase/functions/_shared (the key check, the database helpers);
  2. local_cloud.test.ts with LANESYNC_LOCAL_CLOUD_TESTS=1: the scripts themselves
     (re-runs, database and function outages, --tls);
and always stops and deletes that cloud, whatever happened. Extra arguments go to both
`deno test` runs (e.g. --filter inventory). Exits non-zero when anything fails.

Needs what scripts/cloud-up.sh needs: Debian packages postgresql, openssl, nodejs, npm
(npm installs deno and postgres.js into cloud/local/node_modules once).
EOF
}
case ${1:-} in
  -h | --help) usage; exit 0 ;;
esac

# shellcheck source=../../cloud/local/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../cloud/local/lib.sh"

# A port nobody listens on right now (the kernel picks it).
free_port() {
  node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

CLOUD_API_PORT=$(free_port)
CLOUD_DB_PORT=$(free_port)
while [ "$CLOUD_DB_PORT" = "$CLOUD_API_PORT" ]; do CLOUD_DB_PORT=$(free_port); done
CLOUD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/lanesync-cloud-test.XXXXXX")
export CLOUD_DIR CLOUD_API_PORT CLOUD_DB_PORT

cleanup() {
  local status=$?
  "$REPO/scripts/cloud-down.sh" --purge || status=1
  rm -rf "$CLOUD_DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "test cloud in $CLOUD_DIR (function port $CLOUD_API_PORT, database port $CLOUD_DB_PORT)"
up=$("$REPO/scripts/cloud-up.sh") || die "scripts/cloud-up.sh failed (logs were in $CLOUD_DIR/logs)"
while IFS='=' read -r key value; do
  case $key in
    SUPABASE_URL | SUPABASE_SERVICE_KEY | SUPABASE_DB_URL) export "$key=$value" ;;
  esac
done <<<"$up"
[ -n "${SUPABASE_URL:-}" ] && [ -n "${SUPABASE_SERVICE_KEY:-}" ] && [ -n "${SUPABASE_DB_URL:-}" ] ||
  die "scripts/cloud-up.sh did not print the SUPABASE_* lines"

DENO=$(find_deno)
export DENO_DIR=$CLOUD_DIR/deno DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
# shellcheck disable=SC2054 # the commas belong to --allow-net's list
deno_test=("$DENO" test --config "$LOCAL_DIR/deno.json" --no-remote --no-prompt --allow-net=127.0.0.1,localhost --allow-env)

status=0
# --allow-run: lane_health.test.ts runs scripts/store-report.sh against this cloud.
"${deno_test[@]}" --allow-run="$REPO/scripts/store-report.sh" \
  "$@" "$FUNCTION_DIR" "$FUNCTIONS_DIR/sync-pull" "$FUNCTIONS_DIR/_shared" || status=1
LANESYNC_LOCAL_CLOUD_TESTS=1 "${deno_test[@]}" --allow-read="$CLOUD_DIR" \
  --allow-run="$REPO/scripts/cloud-up.sh,$REPO/scripts/cloud-down.sh" \
  "$@" "$FUNCTION_DIR/local_cloud.test.ts" || status=1

if [ "$status" != 0 ]; then
  log "FAILED; last lines of the function log:"
  tail -n 30 "$CLOUD_DIR/logs/functions.log" >&2 || true
fi
exit "$status"
