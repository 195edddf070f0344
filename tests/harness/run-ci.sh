#!/usr/bin/env bash
# CI entry of the multi-terminal harness: the short form of every scenario (--quick), one
# local cloud, three lanes, POS clients that fail over to another lane with the same
# idempotency key when theirs does not answer (--failover); the issue 9 scenarios (disk-loss,
# backup-restore, lane-dead) included. About 3 minutes on 2 cores; must
# stay under 8.
#
#   LANESYNC_BIN   the lanesync binary (ctest passes the built target; default build/lanesync)
#   HARNESS_SEED   seed to use (default: a random one, printed in the summary for reproduction)
#   HARNESS_ARGS   extra arguments for scripts/harness.sh (e.g. "--scenario steady -v")
#
# Exit status is the harness's: 0 every check passed, 1 a violation (named in the output;
# the work folder with the lane logs is kept and its path printed).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
seed=${HARNESS_SEED:-$(( $(od -An -N4 -tu4 /dev/urandom) % 1000000 + 1 ))}
# shellcheck disable=SC2086 # HARNESS_ARGS is split on purpose
exec "$root/scripts/harness.sh" --quick --failover --seed "$seed" \
  ${LANESYNC_BIN:+--bin "$LANESYNC_BIN"} ${HARNESS_ARGS:-}
