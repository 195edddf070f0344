#!/usr/bin/env bash
# Starts the local cloud: a real PostgreSQL cluster with the migrations applied and the edge
# functions sync-pos-message and sync-pull served by a real Deno. See --help and docs/cloud.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/cloud-up.sh [--tls | --no-tls] [--help]

Starts the local lanesync cloud (SPEC section 8), or whatever part of it is down:
  - PostgreSQL (Debian package) in $CLOUD_DIR/pg, on 127.0.0.1:$CLOUD_DB_PORT, database
    "lanesync", with cloud/local/supabase_shim.sql and then each migration of
    cloud/supabase/migrations applied once (tracked in lanesync_local.applied_migrations);
    with pg_cron preloaded when its Debian package (postgresql-<version>-cron) is installed;
  - the edge functions sync-pos-message and sync-pull (cloud/supabase/functions), served by
    one Deno process (npm package, installed into cloud/local/node_modules on first use)
    running cloud/local/serve.ts, at
    http://127.0.0.1:$CLOUD_API_PORT/functions/v1/sync-pos-message and .../sync-pull.

On success stdout carries exactly these lines (progress and errors go to stderr):
  SUPABASE_URL=http://127.0.0.1:54321
  SUPABASE_SERVICE_KEY=<random key, generated once, kept in $CLOUD_DIR/service_key>
  SUPABASE_CA_FILE=<$CLOUD_DIR/tls/ca.pem>          (only in TLS mode)
  SUPABASE_DB_URL=postgres://postgres:<password>@127.0.0.1:54322/lanesync

Running it again is safe: what runs is left running and the same lines are printed. After
`scripts/cloud-down.sh --functions-only` or `--db-only` (outage tests) it restarts the part
that is down. Data stays until `scripts/cloud-down.sh --purge`.

Options:
  --tls      serve HTTPS with a certificate for 127.0.0.1 and localhost, signed by a local CA
             generated once in $CLOUD_DIR/tls (openssl); the URL becomes https://...
  --no-tls   serve plain HTTP again (the default)
             Without either flag the mode of the previous run is kept.
  -h, --help this text

Environment:
  CLOUD_DIR        folder for data, keys, logs and pid files (default: <repo>/.cloud)
  CLOUD_API_PORT   function port (default 54321, or the one used last time in CLOUD_DIR)
  CLOUD_DB_PORT    PostgreSQL port (default 54322, or the one used last time in CLOUD_DIR)
  PG_BINDIR        PostgreSQL server binaries (default: newest /usr/lib/postgresql/*/bin)
  LANESYNC_DB_POOL_MAX  the function's PostgreSQL connections (default 5); a running
                   function started with another value is restarted

Logs: $CLOUD_DIR/logs/functions.log and $CLOUD_DIR/logs/postgres.log.
Exit status: 0 when the function answers; 1 on failure; 2 on a usage error.
EOF
}

tls_arg=''
for arg in "$@"; do
  case $arg in
    --tls) tls_arg=1 ;;
    --no-tls) tls_arg=0 ;;
    -h | --help) usage; exit 0 ;;
    *) printf 'cloud-up.sh: unknown argument: %s (see --help)\n' "$arg" >&2; exit 2 ;;
  esac
done

# shellcheck source=../cloud/local/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../cloud/local/lib.sh"

for tool in node npm openssl flock setsid; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (Debian packages: nodejs npm openssl util-linux)"
done
[ "$(id -u)" != 0 ] || command -v runuser >/dev/null 2>&1 || die "runuser not found (util-linux)"
find_pg_bindir

mkdir -p "${CLOUD_DIR:-$REPO/.cloud}"
cloud_paths "${CLOUD_DIR:-$REPO/.cloud}"
if ! [ -e "$MARKER" ] && [ -n "$(ls -A "$CLOUD_DIR")" ]; then
  die "CLOUD_DIR=$CLOUD_DIR is not empty and was not made by cloud-up.sh; use an empty or new folder"
fi
take_lock
touch "$MARKER"
mkdir -p "$LOG_DIR" "$RUN_DIR"
if [ "$(id -u)" = 0 ]; then
  # PostgreSQL runs as the postgres user and must reach $PG_DIR.
  chmod 711 "$CLOUD_DIR"
  runuser -u postgres -- test -x "$CLOUD_DIR" ||
    die "the postgres user cannot enter $CLOUD_DIR: make its parent folders world-searchable (chmod o+x) or set CLOUD_DIR elsewhere"
fi

# Settings: environment, else what this folder used last time, else the defaults.
load_state
API_PORT=${CLOUD_API_PORT:-${SAVED_API_PORT:-54321}}
DB_PORT=${CLOUD_DB_PORT:-${SAVED_DB_PORT:-54322}}
TLS=${tls_arg:-${SAVED_TLS:-0}}
for port in "$API_PORT" "$DB_PORT"; do
  [[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "bad port: $port"
done
[ "$API_PORT" != "$DB_PORT" ] || die "CLOUD_API_PORT and CLOUD_DB_PORT must differ"

# --- npm packages: deno and postgres.js, into cloud/local/node_modules -------------------
# Installed only when package.json or package-lock.json changed (stamp file), under a lock
# shared by every cloud folder since the install is shared too. `npm install --no-save`
# installs the versions of the committed lockfile and never rewrites it; `npm ci` is not
# used because it refuses a lockfile without deno's binary packages for other platforms,
# which a registry mirror carrying only this platform cannot provide.
install_node_modules() {
  local stamp=$LOCAL_DIR/node_modules/.lanesync-stamp want
  want=$(cat "$LOCAL_DIR/package.json" "$LOCAL_DIR/package-lock.json" | sha256sum | cut -d' ' -f1)
  exec 8>"${TMPDIR:-/tmp}/lanesync-npm-$(printf '%s' "$LOCAL_DIR" | sha256sum | cut -c1-16).lock"
  flock -w 600 8 || die "timed out waiting for another npm install in $LOCAL_DIR"
  if ! [ -f "$stamp" ] || [ "$(<"$stamp")" != "$want" ]; then
    log "installing npm packages in $LOCAL_DIR (deno, postgres)"
    (cd "$LOCAL_DIR" && npm install --no-save --no-audit --no-fund --prefer-offline >&2 8>&- 9>&-) ||
      die "npm install failed in $LOCAL_DIR"
    printf '%s\n' "$want" >"$stamp"
  fi
  exec 8>&-
}
install_node_modules

DENO=$(find_deno)

# --- secrets --------------------------------------------------------------------------
umask 077
[ -s "$KEY_FILE" ] || openssl rand -hex 32 >"$KEY_FILE"
[ -s "$DB_PASSWORD_FILE" ] || openssl rand -hex 24 >"$DB_PASSWORD_FILE"
umask 022
SERVICE_KEY=$(<"$KEY_FILE")
DB_PASSWORD=$(<"$DB_PASSWORD_FILE")
DB_URL="postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$DB_PORT/$DB_NAME"

# --- PostgreSQL -------------------------------------------------------------------------

init_cluster() {
  log "creating the PostgreSQL cluster in $PGDATA"
  rm -rf "$PG_DIR/data.new"
  mkdir -p "$PG_DIR"
  install -m 600 "$DB_PASSWORD_FILE" "$PG_DIR/pwfile"
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$PG_DIR"; fi
  chmod 700 "$PG_DIR"
  as_pg "$PG_BINDIR/initdb" -D "$PG_DIR/data.new" -U "$DB_USER" -E UTF8 --locale=C \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 --pwfile="$PG_DIR/pwfile" >&2 9>&- ||
    die "initdb failed"
  rm -f "$PG_DIR/pwfile"
  mv "$PG_DIR/data.new" "$PGDATA"
}

# pg_cron (Debian package postgresql-<version>-cron), when installed: preloaded, its jobs kept in
# the lanesync database and run by background workers (no password needed), so the migrations
# schedule their jobs (..._customer_tombstones.sql). $PGDATA/lanesync_local.conf, included by
# postgresql.conf, is rewritten at every start: installing or removing the package takes
# effect at the next start of PostgreSQL, and without it PostgreSQL starts as before.
write_local_conf() {
  local libdir sharedir conf=$PGDATA/lanesync_local.conf include="include_if_exists = 'lanesync_local.conf'"
  libdir=$("$PG_BINDIR/pg_config" --pkglibdir 2>/dev/null) || libdir=$PG_BINDIR/../lib
  sharedir=$("$PG_BINDIR/pg_config" --sharedir 2>/dev/null) || sharedir=/nonexistent
  {
    printf '# Written by scripts/cloud-up.sh at every start of PostgreSQL; edits are lost.\n'
    if [ -f "$libdir/pg_cron.so" ] && [ -f "$sharedir/extension/pg_cron.control" ]; then
      printf "shared_preload_libraries = 'pg_cron'\n"
      printf "cron.database_name = '%s'\n" "$DB_NAME"
      printf 'cron.use_background_workers = on\n'
      printf 'cron.max_running_jobs = 4\n'
    else
      printf '# pg_cron is not installed: no scheduled jobs.\n'
    fi
  } | as_pg tee "$conf.new" >/dev/null 9>&- || die "cannot write $conf"
  as_pg mv -f "$conf.new" "$conf"
  if ! as_pg grep -qxF "$include" "$PGDATA/postgresql.conf"; then
    printf '\n%s\n' "$include" | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null 9>&- ||
      die "cannot extend $PGDATA/postgresql.conf"
  fi
}

start_postgres() {
  write_local_conf
  # The socket folder: short enough for a Unix socket path (107 bytes), else /tmp.
  local sock_dir=$PG_DIR/run
  [ "${#sock_dir}" -le 80 ] || sock_dir=/tmp
  mkdir -p "$sock_dir"
  touch "$LOG_DIR/postgres.log"
  if [ "$(id -u)" = 0 ]; then
    [ "$sock_dir" = /tmp ] || chown postgres: "$sock_dir"
    chown postgres: "$LOG_DIR/postgres.log"
  fi
  log "starting PostgreSQL on 127.0.0.1:$DB_PORT (log: $LOG_DIR/postgres.log)"
  as_pg "$PG_BINDIR/pg_ctl" start -D "$PGDATA" -l "$LOG_DIR/postgres.log" -w -t 60 \
    -o "-p $DB_PORT -k $sock_dir -c listen_addresses=127.0.0.1" >&2 9>&- || {
    tail -n 20 "$LOG_DIR/postgres.log" >&2 || true
    die "PostgreSQL did not start (is port $DB_PORT free? log: $LOG_DIR/postgres.log)"
  }
}

if ! [ -f "$PGDATA/PG_VERSION" ]; then init_cluster; fi
if pg_running; then
  running_port=$(sed -n 4p "$PGDATA/postmaster.pid" 2>/dev/null || true)
  [ "$running_port" = "$DB_PORT" ] ||
    die "PostgreSQL of $CLOUD_DIR already runs on port $running_port, not $DB_PORT: run scripts/cloud-down.sh first"
else
  start_postgres
fi

psql_db() {
  PGPASSWORD=$DB_PASSWORD PGCONNECT_TIMEOUT=10 PGOPTIONS='-c client_min_messages=warning' \
    "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$DB_PORT" -U "$DB_USER" "$@"
}

if [ -z "$(psql_db -d postgres -tAc "select 1 from pg_database where datname = '$DB_NAME'")" ]; then
  log "creating database $DB_NAME"
  psql_db -d postgres -c "create database $DB_NAME" >&2
fi
psql_db -d "$DB_NAME" -1 -f "$LOCAL_DIR/supabase_shim.sql" >&2 || die "applying supabase_shim.sql failed"

# Each migration once, in name order, in one transaction with its bookkeeping row.
applied=$(psql_db -d "$DB_NAME" -tAc "select version from lanesync_local.applied_migrations")
shopt -s nullglob
migrations=("$MIGRATIONS_DIR"/*.sql)
shopt -u nullglob
for file in "${migrations[@]}"; do
  name=$(basename "$file" .sql)
  [[ $name =~ ^([0-9]+)_[A-Za-z0-9_]+$ ]] || die "migration file name must be <digits>_<name>.sql: $file"
  version=${BASH_REMATCH[1]}
  if grep -qxF -- "$version" <<<"$applied"; then continue; fi
  log "applying migration $name"
  {
    cat "$file"
    printf '\n;\ninsert into lanesync_local.applied_migrations (version, name) values (%s, %s);\n' \
      "'$version'" "'$name'"
  } | psql_db -d "$DB_NAME" -1 -f - >&2 || die "migration $name failed (nothing of it was applied)"
done

# --- TLS material -------------------------------------------------------------------------
CA_FILE=$TLS_DIR/ca.pem
make_tls() {
  local d=$TLS_DIR.new
  log "generating a local CA and a server certificate in $TLS_DIR"
  rm -rf "$d"
  mkdir -m 700 "$d"
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$d/ca.key" -out "$d/ca.pem" -days 3650 -subj "/CN=lanesync local cloud CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null || die "creating the CA failed"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null ||
    die "creating the server key failed"
  printf '%s\n' "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" \
    "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    "subjectKeyIdentifier=hash" \
    "authorityKeyIdentifier=keyid,issuer" >"$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -CAserial "$d/ca.srl" -out "$d/server.pem" -days 825 -extfile "$d/server.ext" 2>/dev/null ||
    die "signing the server certificate failed"
  openssl verify -CAfile "$d/ca.pem" "$d/server.pem" >/dev/null || die "the new server certificate does not verify"
  rm -f "$d/server.csr" "$d/server.ext" "$d/ca.srl"
  chmod 644 "$d/ca.pem"
  mv "$d" "$TLS_DIR"
}
if [ "$TLS" = 1 ] && ! [ -s "$TLS_DIR/server.pem" ]; then make_tls; fi

# --- the function -------------------------------------------------------------------------
if [ "$TLS" = 1 ]; then SCHEME=https; else SCHEME=http; fi
BASE_URL="$SCHEME://127.0.0.1:$API_PORT"
FN_URL="$BASE_URL/functions/v1/sync-pos-message"
# "serve": the router of every function (an older cloud-up.sh served sync-pos-message alone).
MODE="$API_PORT $TLS serve${LANESYNC_DB_POOL_MAX:+ pool=$LANESYNC_DB_POOL_MAX}"

if fn_pid >/dev/null && [ "$(cat "$FN_MODEFILE" 2>/dev/null)" != "$MODE" ]; then
  log "function runs with other settings; restarting it"
  stop_function
fi
if ! fn_pid >/dev/null; then
  log "starting the function on $BASE_URL (log: $LOG_DIR/functions.log)"
  rm -f "$FN_PIDFILE"
  tls_env=()
  if [ "$TLS" = 1 ]; then
    tls_env=(LANESYNC_TLS_CERT_FILE="$TLS_DIR/server.pem" LANESYNC_TLS_KEY_FILE="$TLS_DIR/server.key")
  fi
  # setsid: its own session, so it outlives this script and the terminal. The wrapper writes
  # its pid before exec'ing deno, so the pidfile names the deno process itself.
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$FN_PIDFILE" \
    env SUPABASE_DB_URL="$DB_URL" LANESYNC_SERVICE_KEY="$SERVICE_KEY" \
    LANESYNC_LISTEN_HOST=127.0.0.1 LANESYNC_LISTEN_PORT="$API_PORT" "${tls_env[@]}" \
    LANESYNC_DB_POOL_MAX="${LANESYNC_DB_POOL_MAX:-}" \
    DENO_DIR="$CLOUD_DIR/deno" DENO_NO_UPDATE_CHECK=1 NO_COLOR=1 \
    "$DENO" run --config "$LOCAL_DIR/deno.json" --no-remote --no-prompt \
    --allow-net=127.0.0.1 --allow-env --allow-read="$TLS_DIR" "$SERVE_TS" \
    >>"$LOG_DIR/functions.log" 2>&1 </dev/null 9>&- &
  printf '%s\n' "$MODE" >"$FN_MODEFILE"
fi

# Wait until the function answers an (empty) authenticated request, with a deadline.
probe_env=(PROBE_KEY="$SERVICE_KEY")
[ "$TLS" = 1 ] && probe_env+=(NODE_EXTRA_CA_CERTS="$CA_FILE")
deadline=$((SECONDS + 60))
started_wait=$SECONDS
until answer=$(env "${probe_env[@]}" node --no-warnings "$LOCAL_DIR/probe.mjs" "$FN_URL" 9>&-); do
  if [ "$((SECONDS - started_wait))" -ge 2 ] && ! fn_pid >/dev/null; then
    tail -n 20 "$LOG_DIR/functions.log" >&2 || true
    die "the function exited (is port $API_PORT free? log: $LOG_DIR/functions.log)"
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    tail -n 20 "$LOG_DIR/functions.log" >&2 || true
    die "the function did not answer within 60 s at $FN_URL (last: $answer)"
  fi
  sleep 0.2
done

printf 'API_PORT=%s\nDB_PORT=%s\nTLS=%s\n' "$API_PORT" "$DB_PORT" "$TLS" >"$STATE_FILE"
log "local cloud is up: $FN_URL and $BASE_URL/functions/v1/sync-pull"
printf 'SUPABASE_URL=%s\n' "$BASE_URL"
printf 'SUPABASE_SERVICE_KEY=%s\n' "$SERVICE_KEY"
[ "$TLS" = 1 ] && printf 'SUPABASE_CA_FILE=%s\n' "$CA_FILE"
printf 'SUPABASE_DB_URL=%s\n' "$DB_URL"
