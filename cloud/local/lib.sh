# shellcheck shell=bash disable=SC2034  # a library: the variables are used by its callers
# Shared by scripts/cloud-up.sh, scripts/cloud-down.sh and tests/cloud/run-deno-tests.sh
# (sourced, not run): paths, the saved settings of a local cloud folder, process checks and
# the PostgreSQL helpers.
# Everything human-readable goes to stderr: cloud-up.sh's stdout carries only its result.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOCAL_DIR=$REPO/cloud/local
FUNCTIONS_DIR=$REPO/cloud/supabase/functions
FUNCTION_DIR=$FUNCTIONS_DIR/sync-pos-message
# The local cloud serves every function from one Deno process: this router (cloud/local/serve.ts).
SERVE_TS=$LOCAL_DIR/serve.ts
MIGRATIONS_DIR=$REPO/cloud/supabase/migrations
DB_NAME=lanesync
DB_USER=postgres

log() { printf 'cloud: %s\n' "$*" >&2; }
die() { printf 'cloud: error: %s\n' "$*" >&2; exit 1; }

# cloud_paths DIR: sets the absolute CLOUD_DIR and every path inside it.
cloud_paths() {
  CLOUD_DIR=$(cd "$1" && pwd)
  MARKER=$CLOUD_DIR/.lanesync-cloud     # proves the folder is ours (cloud-down --purge checks it)
  STATE_FILE=$CLOUD_DIR/cloud.env       # ports and TLS mode, kept between runs
  LOG_DIR=$CLOUD_DIR/logs
  RUN_DIR=$CLOUD_DIR/run
  FN_PIDFILE=$RUN_DIR/functions.pid
  FN_MODEFILE=$RUN_DIR/functions.mode   # "PORT TLS" the running function was started with
  PG_DIR=$CLOUD_DIR/pg                  # owned by the postgres user
  PGDATA=$PG_DIR/data
  TLS_DIR=$CLOUD_DIR/tls
  KEY_FILE=$CLOUD_DIR/service_key
  DB_PASSWORD_FILE=$CLOUD_DIR/db_password
}

# take_lock: one cloud-up/cloud-down at a time per folder. fd 9 stays open until exit, so
# every long-lived child must be started with 9>&- (or it would keep the lock).
take_lock() {
  exec 9>"$CLOUD_DIR/.lock"
  flock -w 300 9 || die "another cloud-up/cloud-down is running on $CLOUD_DIR"
}

# load_state: SAVED_API_PORT, SAVED_DB_PORT, SAVED_TLS from cloud.env (empty when absent).
load_state() {
  SAVED_API_PORT='' SAVED_DB_PORT='' SAVED_TLS=''
  [ -f "$STATE_FILE" ] || return 0
  local key value
  while IFS='=' read -r key value; do
    case $key in
      API_PORT) SAVED_API_PORT=$value ;;
      DB_PORT) SAVED_DB_PORT=$value ;;
      TLS) SAVED_TLS=$value ;;
    esac
  done <"$STATE_FILE"
}

# find_pg_bindir: PG_BINDIR, or the newest Debian PostgreSQL, or pg_ctl on PATH.
find_pg_bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then
    [ -x "$PG_BINDIR/pg_ctl" ] || die "PG_BINDIR=$PG_BINDIR has no pg_ctl"
    return 0
  fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ]; then PG_BINDIR=$d; return 0; fi
  done
  if command -v pg_ctl >/dev/null 2>&1; then
    PG_BINDIR=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
    return 0
  fi
  die "PostgreSQL server binaries not found (install the Debian package postgresql, or set PG_BINDIR)"
}

# find_deno: prints the deno binary npm installed in cloud/local/node_modules: the real
# executable (the package's postinstall links it), not the node wrapper, so its pid is deno's.
find_deno() {
  local candidate
  for candidate in "$LOCAL_DIR"/node_modules/deno/deno "$LOCAL_DIR"/node_modules/@deno/*/deno; do
    if [ -f "$candidate" ] && [ -x "$candidate" ]; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  die "no deno binary under $LOCAL_DIR/node_modules (run scripts/cloud-up.sh, which installs it)"
}

# as_pg CMD...: PostgreSQL refuses to run as root; as root, run as the postgres user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_running() {
  [ -f "$PGDATA/PG_VERSION" ] && as_pg "$PG_BINDIR/pg_ctl" status -D "$PGDATA" >/dev/null 2>&1
}

# fn_pid: prints the pid of the running function server; fails when it is not running.
fn_pid() {
  local pid
  [ -s "$FN_PIDFILE" ] || return 1
  pid=$(<"$FN_PIDFILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled pid: it must still be deno serving our functions (the router, or
  # sync-pos-message alone as started by an older cloud-up.sh, which the next one restarts).
  grep -qxF -e "$SERVE_TS" -e "$FUNCTION_DIR/index.ts" < <(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  printf '%s\n' "$pid"
}

# stop_function: SIGTERM (the server finishes in-flight requests), SIGKILL after 15 s.
stop_function() {
  local pid deadline
  if pid=$(fn_pid); then
    log "stopping the function (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        log "function did not stop in 15 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
  fi
  rm -f "$FN_PIDFILE" "$FN_MODEFILE"
}

# stop_postgres: fast shutdown (rolls back open transactions), immediate if that fails.
stop_postgres() {
  if pg_running; then
    log "stopping PostgreSQL"
    as_pg "$PG_BINDIR/pg_ctl" stop -D "$PGDATA" -m fast -w -t 60 >&2 9>&- ||
      as_pg "$PG_BINDIR/pg_ctl" stop -D "$PGDATA" -m immediate -w -t 60 >&2 9>&- ||
      die "could not stop PostgreSQL (data in $PGDATA)"
  fi
}
