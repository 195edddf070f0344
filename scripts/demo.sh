#!/usr/bin/env bash
# The main job: a three-lane store (examples/store/L1.env, L2.env, L3.env) with the local cloud.
# Installs what is missing, builds, starts the local cloud and three agents, publishes sales,
# stock movements and customer changes on every lane, waits until every message is cloud_ack,
# shows the store's states, and stops everything it started.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/demo.sh [--messages N] [--keep-running] [--no-setup] [--help]

  --messages N     messages to publish per lane (default 200)
  --keep-running   leave the lanes and the local cloud running at the end (stop them with
                   Ctrl-C, or scripts/cloud-down.sh and kill)
  --no-setup       skip the package check

Uses the ports of examples/store/L*.env (8123-8125 peers, 9123-9125 local API) and the local
cloud's (CLOUD_API_PORT 54321, CLOUD_DB_PORT 54322). Lane outboxes go to data/ (OUTBOX_PATH is
relative to the working directory, the repository root), logs to data/logs/.
USAGE
}

root=$(cd "$(dirname "$0")/.." && pwd)
messages=200
keep=0
setup=1
while (($#)); do
  case "$1" in
    --help|-h) usage; exit 0 ;;
    --messages) messages="$2"; shift ;;
    --keep-running) keep=1 ;;
    --no-setup) setup=0 ;;
    *) echo "demo.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

cd "$root"
((setup)) && scripts/setup.sh
scripts/build.sh >/dev/null
bin="$root/build/lanesync"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  scripts/cloud-down.sh >/dev/null 2>&1 || true
}
if ((!keep)); then trap cleanup EXIT; fi

echo "== starting the local cloud (PostgreSQL + Deno edge function)"
cloud_env=$(scripts/cloud-up.sh)
eval "export $(echo "$cloud_env" | grep -E '^SUPABASE_(URL|SERVICE_KEY)=' | tr '\n' ' ')"
db_url=$(echo "$cloud_env" | sed -n 's/^SUPABASE_DB_URL=//p')

mkdir -p data/logs
rm -f data/L1.db* data/L2.db* data/L3.db*
echo "== starting lanes L1, L2, L3 (logs in data/logs/)"
chmod 600 examples/store/L*.env # they hold PEER_SECRET (git checks them out 0644)
for l in L1 L2 L3; do
  # The env files leave SUPABASE_* out, so the values exported above fill them in.
  "$bin" agent --env "examples/store/$l.env" >"data/logs/$l.log" 2>&1 &
  pids+=($!)
done
for l in 1 2 3; do
  port=$((9122 + l))
  deadline=$((SECONDS + 20))
  until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
    if ((SECONDS > deadline)) || ! kill -0 "${pids[l - 1]}" 2>/dev/null; then
      echo "demo: lane L$l did not become healthy; data/logs/L$l.log:" >&2
      tail -n 20 "data/logs/L$l.log" >&2
      exit 1
    fi
    sleep 0.05  # polling /healthz under the deadline above
  done
done

echo "== publishing $messages messages on each lane"
publishers=()
for l in 1 2 3; do
  port=$((9122 + l))
  (
    for i in $(seq 1 "$messages"); do
      case $((i % 3)) in
        0) body="{\"topic\":\"transaction\",\"data\":{\"total\":$i.5,\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-$((i % 17))\",\"qty\":1}]}}" ;;
        1) body="{\"topic\":\"inventory\",\"data\":{\"sku\":\"SKU-$((i % 17))\",\"delta\":-1,\"reason\":\"sale\"}}" ;;
        2) body="{\"topic\":\"customer\",\"data\":{\"customer_id\":\"C-L$l-$i\",\"version\":1,\"name\":\"Customer $i\"}}" ;;
      esac
      curl -sf -X POST -H 'Content-Type: application/json' -d "$body" \
        "http://127.0.0.1:$port/v1/messages" >/dev/null
    done
  ) &
  publishers+=($!)
done
for p in "${publishers[@]}"; do wait "$p"; done

echo "== waiting until every message is cloud_ack"
deadline=$((SECONDS + 120))
while :; do
  done_lanes=0
  for l in L1 L2 L3; do
    n=$("$bin" status --env "examples/store/$l.env" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["outbox"]["cloud_ack"])')
    [[ "$n" -ge "$messages" ]] && done_lanes=$((done_lanes + 1))
  done
  ((done_lanes == 3)) && break
  if ((SECONDS > deadline)); then
    echo "demo: not every message reached cloud_ack within 120 s" >&2
    "$bin" status --store examples/store/
    exit 1
  fi
  sleep 0.5
done

echo "== the store"
"$bin" status --store examples/store/
echo
echo "== in the cloud (public.pos_messages by lane and topic)"
psql "$db_url" -c "select terminal_id, topic, count(*) from pos_messages group by 1, 2 order by 1, 2"
if ((keep)); then
  echo "lanes and cloud keep running: dashboards at http://127.0.0.1:9123/ (9124, 9125)"
fi
