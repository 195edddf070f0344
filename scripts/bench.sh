#!/usr/bin/env bash
# Benchmarks: the outbox group commit (C++ bench/outbox_bench) and end-to-end publish,
# publish->peer_ack latency and cloud drain with real agents and the local cloud.
set -euo pipefail
usage() {
  cat <<'USAGE'
usage: scripts/bench.sh [--smoke] [--no-cloud] [--help]

Prints two tables:
  1. outbox group commit: msgs/s, msgs per fsync, p50/p99 publish latency at 1..256 concurrent
     publishers (build/bench/outbox_bench);
  2. end to end on loopback (scripts/bench/e2e.py): publish throughput through the local API,
     publish->peer_ack latency p50/p99 over --messages (default 10,000) messages, and the drain
     rate of a backlog to the local cloud (real PostgreSQL + Deno).
  --smoke     small sizes; the whole run takes well under 60 s
  --no-cloud  skip the cloud drain (no PostgreSQL/Deno needed)
Speed figures live here, never in unit tests.
USAGE
}
root=$(cd "$(dirname "$0")/.." && pwd)
smoke=()
e2e=()
for a in "$@"; do
  case "$a" in
    --help|-h) usage; exit 0 ;;
    --smoke) smoke=(--smoke); e2e+=(--smoke) ;;
    --no-cloud) e2e+=(--no-cloud) ;;
    *) echo "bench.sh: unknown option $a" >&2; usage >&2; exit 2 ;;
  esac
done
"$root/scripts/build.sh" >/dev/null
echo "== outbox group commit (bench/outbox_bench)"
"$root/build/bench/outbox_bench" "${smoke[@]}"
echo
echo "== end to end (scripts/bench/e2e.py)"
python3 "$root/scripts/bench/e2e.py" --bin "$root/build/lanesync" "${e2e[@]}"
