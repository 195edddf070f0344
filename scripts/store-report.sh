#!/usr/bin/env bash
# Head office's report of the lanes: the views lane_health and sync_daily / sync_daily_uploads
# (migration ..._lane_health.sql), printed with psql. See --help and docs/cloud.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/store-report.sh [--store ID] [--help]

Prints, from the cloud database at $SUPABASE_DB_URL (psql):
  1. every lane (view lane_health), the lanes that need a look first: behind, silent,
     failing, then ok; within a state by store and terminal;
  2. the last 7 days of sync_daily (per store and day: requests, messages stored, duplicate,
     rejected, customer conflicts, stored through covered uploads);
  3. the last 7 days of sync_daily_uploads (per store, day and uploading lane).

  --store ID   only that store's rows
  -h, --help   this text

SUPABASE_DB_URL: the database URL, e.g. the line scripts/cloud-up.sh prints for the local
cloud, or the hosted project's connection string (docs/cloud.md, "Store report"). Connected
as the database owner every store is shown; as a role under row level security, only what
it may read.

Exit status: 0 on success; 1 when psql fails; 2 on a usage error or SUPABASE_DB_URL unset.
EOF
}

store=''
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --store)
      if [ $# -lt 2 ] || [ -z "$2" ]; then
        echo 'store-report.sh: --store needs a store id (see --help)' >&2
        exit 2
      fi
      store=$2
      shift 2
      ;;
    --store=*)
      store=${1#--store=}
      [ -n "$store" ] || { echo 'store-report.sh: --store needs a store id (see --help)' >&2; exit 2; }
      shift
      ;;
    *) printf 'store-report.sh: unknown argument: %s (see --help)\n' "$1" >&2; exit 2 ;;
  esac
done

if [ -z "${SUPABASE_DB_URL:-}" ]; then
  cat >&2 <<'EOF'
store-report.sh: SUPABASE_DB_URL is not set: export the cloud database's URL, e.g. for the
local cloud: export "$(scripts/cloud-up.sh | grep '^SUPABASE_DB_URL=')" (docs/cloud.md)
EOF
  exit 2
fi
command -v psql >/dev/null || { echo 'store-report.sh: psql not found (Debian package postgresql-client)' >&2; exit 1; }

# The store goes in as a psql variable (:'store' quotes it), never into the SQL text.
psql "$SUPABASE_DB_URL" -X -q -v ON_ERROR_STOP=1 -v store="$store" -P pager=off -P footer=off <<'SQL'
\pset null '-'
\echo 'Lanes (behind, silent, failing first)'
select store_id as store, terminal_id as lane, state, agent_version as version,
       date_trunc('second', silent_for) as silent_for,
       pending, peer_ack, failed, backlog,
       date_trunc('second', oldest_pending_age) as oldest_pending,
       date_trunc('second', oldest_peer_ack_age) as oldest_peer_ack,
       to_char(behind_since, 'YYYY-MM-DD HH24:MI:SS') as behind_since,
       retry_depth as retries, peers_up || '/' || peers_configured as peers,
       last_seq, to_char(received_at, 'YYYY-MM-DD HH24:MI:SS') as received_at
from public.lane_health
where :'store' = '' or store_id = :'store'
order by case state when 'behind' then 0 when 'silent' then 1 when 'failing' then 2 else 3 end,
         store_id, terminal_id;
\echo
\echo 'Sync per day (last 7 days)'
select store_id as store, day, requests, stored, duplicate, rejected,
       customer_conflicts as conflicts, covered_stored as covered
from public.sync_daily
where (:'store' = '' or store_id = :'store') and day > current_date - 7
order by day desc, store_id;
\echo
\echo 'Uploads per lane and day (last 7 days; covered: messages uploaded for another lane)'
select store_id as store, day, uploader as lane, requests, own_messages as own,
       covered_messages as covered, stored, duplicate, rejected
from public.sync_daily_uploads
where (:'store' = '' or store_id = :'store') and day > current_date - 7
order by day desc, store_id, uploader;
SQL
