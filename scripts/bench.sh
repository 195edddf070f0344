#!/usr/bin/env bash
# Benchmarks: the outbox group commit (C++ bench/outbox_bench), end-to-end publish,
# publish->peer_ack latency and cloud drain with real agents and the local cloud, a
# three-lane store under the C++ load generator (optionally beside NATS JetStream), and the
# scale figures (a 100,000-message drain, a 1,000,000-message outbox, a new peer's catch-up).
set -euo pipefail
usage() {
  cat <<'USAGE'
usage: scripts/bench.sh [--smoke] [--no-cloud] [--jetstream] [--store-only] [--scale-only]
                       [--scale-rows drain,startup,catchup] [--fleet] [--pull] [--no-build] [--help]

Prints four tables:
  1. outbox group commit: msgs/s, msgs per fsync, p50/p99 publish latency at 1..256 concurrent
     publishers (build/bench/outbox_bench);
  2. end to end on loopback (scripts/bench/e2e.py): publish throughput through the local API,
     publish->peer_ack latency p50/p99 over --messages (default 10,000) messages, and the drain
     rate of a backlog to the local cloud (real PostgreSQL + Deno);
  3. a three-lane store on loopback (scripts/bench/store_bench.py, load from
     build/bench/lanesync_loadgen): ingest (201) and publish->peer_ack p50/p99/p999/max at 100,
     1,000 and 5,000 msg/s, the max peer_ack rate (closed loop, 256 in flight, 50,000
     messages) and the raw SQLite limit of this disk with our ratio to it. Also written as
     JSON to bench/results/;
  4. scale (scripts/bench/scale_bench.py): the drain of a 100,000-message peer_ack backlog of
     one lane of three to the local cloud at the default CLOUD_BATCH_SIZE; start-up time and
     RSS of an agent with a 1,000,000-message outbox (written by build/bench/outbox_fill);
     the catch-up of a new, empty peer on those 1,000,000. Also JSON in bench/results/.
  --smoke       small sizes; checks that the bench works (never its numbers), well under 60 s
  --no-cloud    skip the cloud drains of tables 2 and 4 (no PostgreSQL/Deno needed)
  --jetstream   table 3 also against NATS JetStream: a 3-node cluster (R3 stream) and one
                server (R1), on loopback, same client and schedules; installs the Debian
                packages nats-server and libnats-dev when missing (apt-get, needs root)
  --store-only  only table 3
  --scale-only  only table 4
  --scale-rows LIST   table 4's rows, a comma-separated subset of drain,startup,catchup
  --fleet       only the fleet table (scripts/bench/fleet_bench.py): 100, 250 and 500 simulated
                lanes uploading at once through the local cloud's edge function (Deno) to its
                PostgreSQL, with CPU, connections, waits and statement times; with --smoke, 20
                lanes for 1.5 s
  --pull        only the downstream table (scripts/bench/pull_bench.py): head office publishing
                100,000 products, a new lane's snapshot of them and a catch-up over sync-pull,
                serialized publishers and one holding the log lock; no lane binary needed;
                with --smoke, 2,000 products
  --no-build    use the binaries in build/ as they are (the ctest bench.smoke: the test run
                built them; a build here could reconfigure the build folder)
Speed figures live here, never in unit tests. docs/benchmarks.md explains each row.
USAGE
}
root=$(cd "$(dirname "$0")/.." && pwd)
smoke=()
e2e=()
store=()
scale=()
scale_rows=drain,startup,catchup
jetstream=0
store_only=0
fleet=0
pull=0
build=1
scale_only=0
no_cloud=0
while (($#)); do
  a=$1
  shift
  case "$a" in
    --help|-h) usage; exit 0 ;;
    --smoke) smoke=(--smoke); e2e+=(--smoke); store+=(--smoke); scale+=(--smoke) ;;
    --no-cloud) e2e+=(--no-cloud); no_cloud=1 ;;
    --jetstream) jetstream=1; store+=(--jetstream) ;;
    --store-only) store_only=1 ;;
    --scale-only) scale_only=1 ;;
    --scale-rows)
      (($#)) || { echo "bench.sh: --scale-rows needs a value" >&2; exit 2; }
      scale_rows=$1
      shift ;;
    --fleet) fleet=1 ;;
    --pull) pull=1 ;;
    --no-build) build=0 ;;
    *) echo "bench.sh: unknown option $a" >&2; usage >&2; exit 2 ;;
  esac
done

# nats-server runs the JetStream side; libnats-dev lets lanesync_loadgen build --jetstream.
install_jetstream() {
  local need=()
  command -v nats-server >/dev/null || need+=(nats-server)
  dpkg -s libnats-dev >/dev/null 2>&1 || need+=(libnats-dev)
  ((${#need[@]})) || return 0
  echo "bench.sh: installing ${need[*]} (Debian packages)" >&2
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
}
((jetstream)) && install_jetstream

if ((pull)); then
  echo "== downstream on the local cloud (scripts/bench/pull_bench.py)"
  exec python3 "$root/scripts/bench/pull_bench.py" "${smoke[@]}"
fi
((build)) && "$root/scripts/build.sh" >/dev/null
if ((fleet)); then
  echo "== fleet of lanes uploading to the local cloud (scripts/bench/fleet_bench.py)"
  exec python3 "$root/scripts/bench/fleet_bench.py" --loadgen "$root/build/bench/lanesync_loadgen" \
    "${smoke[@]}"
fi
if ((no_cloud)); then
  scale_rows=$(tr "," "\n" <<<"$scale_rows" | { grep -vx drain || true; } | paste -sd, -)
fi
if ((!store_only && !scale_only)); then
  echo "== outbox group commit (bench/outbox_bench)"
  "$root/build/bench/outbox_bench" "${smoke[@]}"
  echo
  echo "== end to end (scripts/bench/e2e.py)"
  python3 "$root/scripts/bench/e2e.py" --bin "$root/build/lanesync" "${e2e[@]}"
  echo
fi
if ((!scale_only)); then
  echo "== three-lane store under load (scripts/bench/store_bench.py)"
  python3 "$root/scripts/bench/store_bench.py" --bin "$root/build/lanesync" \
    --loadgen "$root/build/bench/lanesync_loadgen" "${store[@]}"
fi
if ((!store_only)) && [[ -n $scale_rows ]]; then
  ((scale_only)) || echo
  echo "== scale (scripts/bench/scale_bench.py)"
  python3 "$root/scripts/bench/scale_bench.py" --bin "$root/build/lanesync" \
    --loadgen "$root/build/bench/lanesync_loadgen" --fill "$root/build/bench/outbox_fill" \
    --rows "$scale_rows" "${scale[@]}"
fi
