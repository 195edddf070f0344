#!/usr/bin/env bash
# The lanesync multi-terminal integration harness: N lanes + the local cloud, load, fault
# scenarios, exactly-once verification. The driver is Python 3 (standard library only) in
# scripts/harness/; this wrapper only finds it. See docs/harness.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
case "${1:-}" in
  -h | --help)
    cat <<'USAGE'
Usage: scripts/harness.sh [--lanes N] [--messages K] [--scenario NAME]... [--seed S] [--quick]
                          [--rate R] [--payload BYTES] [--clients C] [--deadline SECS]
                          [--keep] [--work-dir DIR] [--bin PATH] [--no-cloud] [--list] [--help]
                          [--soak MINUTES [--soak-extra NAME,...] [--soak-min-faults N]
                           [--soak-keep-going]]

Starts its own local cloud (scripts/cloud-up.sh, free ports, its own CLOUD_DIR) and N lane
agents (default 3, env files with free ports in a temporary work folder), drives load through
each lane's local API, runs the named fault scenarios one after the other, waits for
convergence with a deadline and verifies:
  - every message that got a 201 is in pos_messages exactly once with identical data;
  - each lane's seq in the cloud is contiguous from 1 (rejected poison are the only holes);
  - every lane's own messages are cloud_ack (injected poison: failed), every lane holds a
    replica of every other lane's messages, nothing else is failed;
  - the domain tables were applied exactly once (sales, inventory sums, customer versions);
  - lanes stop cleanly on SIGTERM and their outboxes pass `lanesync check-db`.
Prints a summary table (accepted, duplicates suppressed, faults injected, publish->peer_ack
and publish->cloud_ack latency p50/p99, convergence time) and exits 1 naming each violation.

Scenarios (default: all): steady, lane-crash, lane-pause, peer-partition, cloud-outage,
cloud-flaky, rolling-restart, late-joiner, poison, failover, disk-loss, backup-restore,
lane-dead. --list describes them.

Options:
  --lanes N          lanes per store (default 3)
  --messages K       messages per lane (default 300 with --quick, 3000 without)
  --scenario NAME    run this scenario (repeat, or NAME,NAME; 'all' = every scenario)
  --seed S           seed for every random choice (default random; printed for reproduction)
  --quick            short forms, as CI runs them (all scenarios in about 5 minutes)
  --rate R           messages per second per lane, 0 = unpaced (default 60 / 100)
  --payload BYTES    approximate size of each message's data (default 200 / 512)
  --clients C        concurrent POS clients per lane (default 4 / 8)
  --deadline SECS    convergence deadline per scenario (default 90 / 300)
  --keep             keep the work folder even on success (it is always kept on failure)
  --work-dir DIR     parent folder for the work folder (default $TMPDIR or /tmp)
  --bin PATH         lanesync binary (default $LANESYNC_BIN or build/lanesync)
  --no-cloud         peer-only run without the cloud (cloud scenarios are skipped)
  --failover         POS clients retry an unanswered publish on another lane with the same
                     idempotency key (CI runs with it)
  --quorum Q         PEER_ACK_QUORUM of every lane (default 1; at most lanes - 1)
  --log-level L      the lanes' LOG_LEVEL (default info)
  -v, --verbose      more progress output
  --list             list the scenarios and what each proves
  --soak MINUTES     the soak: the quick forms of the scenarios in cycles (a new order each
                     cycle, a new seed each run) for MINUTES; prints process-level faults by
                     kind, proxy chunk-level faults apart, messages accepted, peer_ack'd
                     messages lost (must be 0), pending-only messages lost with a destroyed
                     disk (expected), duplicates in the cloud (must be 0); exit 1 otherwise.
                     Stops at the first run with a violation, keeping its folder.
  --soak-extra NAMES scenarios run twice per soak cycle (more faults per minute)
  --soak-min-faults N  exit 1 unless the soak injected at least N process-level faults
  --soak-keep-going  do not stop the soak at a run with a violation

Long form (the documented full run): scripts/harness.sh --scenario all
CI short form:                       scripts/harness.sh --quick --scenario all
An hour's soak:                      scripts/harness.sh --soak 60 --soak-min-faults 200

Exit status: 0 all checks passed, 1 a violation (named in the output), 2 usage error,
130 interrupted. Everything the harness started is stopped at the end, also on Ctrl-C.
USAGE
    exit 0 ;;
esac
command -v python3 >/dev/null 2>&1 || { echo "harness.sh: python3 not found" >&2; exit 2; }
PYTHONDONTWRITEBYTECODE=1 exec python3 "$here/harness/driver.py" "$@"
