# Multi-process tests (Python standard library only): real agent processes on free ports.
find_package(Python3 REQUIRED COMPONENTS Interpreter)

function(lanesync_py_test name module)
  add_test(NAME integration.${name}
           COMMAND ${Python3_EXECUTABLE} -m unittest -v ${module}
           WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/integration)
  set_tests_properties(integration.${name} PROPERTIES
    ENVIRONMENT "LANESYNC_BIN=$<TARGET_FILE:lanesync>;LANESYNC_ARTIFACTS=${PROJECT_BINARY_DIR}/test-artifacts;PYTHONDONTWRITEBYTECODE=1"
    TIMEOUT 600 LABELS "integration;${ARGN}")
endfunction()

lanesync_py_test(peers test_peers)
lanesync_py_test(peer_protocol test_peer_protocol)
# Issue 13: head office's catalog over the peer mesh (protocol v3), and v2/v1 peers beside it.
lanesync_py_test(mesh_catalog test_mesh_catalog)
lanesync_py_test(api_cli test_api_cli)
# Issue 10: waiting for acks (?wait=peer_ack, publish --wait) and batch publish, two lanes.
lanesync_py_test(api_wait test_api_wait)
# Issue 11: L1 of a three-lane store kill -9'd 50 times under load (singles, batches, replicas
# from its peers), every accepted message checked after each restart (CRASH_LOOP_KILLS=500 and
# CRASH_LOOP_SEED=S for the longer local form / a replay; 35-60 s).
lanesync_py_test(crash_loop test_crash_loop)
# scripts/lib/lanes.py itself (ports, waits, HTTP, process rules) against a stand-in agent.
lanesync_py_test(lanes_lib test_lanes_lib)
# Issue 11: abuse of the peer port and the API (docs/bad-input.md), and storage faults (a full
# tmpfs, corrupt and read-only outboxes; the mounts need root, as in CI).
lanesync_py_test(abuse test_abuse)
lanesync_py_test(storage_faults test_storage_faults)

# Issue 14: `lanesync init-store` output passes check-config and runs a three-lane store.
lanesync_py_test(init_store test_init_store)
# Issue 14: the Debian package built with CPack from this build (contents, shlibdeps, lintian,
# the systemd unit verified and scored, the extracted agent, install/purge in a namespace).
add_test(NAME integration.package
         COMMAND ${Python3_EXECUTABLE} -m unittest -v test_package
         WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/integration)
set_tests_properties(integration.package PROPERTIES
  ENVIRONMENT "LANESYNC_BIN=$<TARGET_FILE:lanesync>;LANESYNC_BUILD_DIR=${PROJECT_BINARY_DIR};LANESYNC_ARTIFACTS=${PROJECT_BINARY_DIR}/test-artifacts;PYTHONDONTWRITEBYTECODE=1"
  TIMEOUT 600 LABELS "integration;package")

# The edge function's own tests against a real local PostgreSQL + Deno (scripts/cloud-up.sh).
add_test(NAME cloud.function COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cloud/run-deno-tests.sh)
set_tests_properties(cloud.function PROPERTIES TIMEOUT 600 LABELS cloud)
lanesync_py_test(cloud test_cloud cloud)
# Issue 9: a lane rebuilt from its peers; a dead lane's messages uploaded by a peer (takeover).
lanesync_py_test(rebuild test_rebuild)
lanesync_py_test(takeover test_takeover cloud)
# Issue 12: OUTBOX_RETENTION_DAYS=0.0001 over rounds of load; `lanesync prune` (about 60 s).
lanesync_py_test(retention test_retention cloud)
# Issue 12: lane summaries and heartbeats in the cloud's lane_status / lane_health, a lane that
# goes silent, scripts/store-report.sh (about 10 s).
lanesync_py_test(lane_health test_lane_health cloud)
# Issue 12: priorities order the upload backlog (3200 messages held back, then released),
# TOPIC_PRIORITY (about 30 s).
lanesync_py_test(priorities test_priorities cloud)
# Issue 12: live reload (lanesync reload, SIGHUP, POST /v1/reload): live keys, refusals, an
# invalid file, peer sessions untouched; a rotated service key against the real local cloud.
lanesync_py_test(reload test_reload cloud)
# Issue 13: head office's changes pulled by real lanes from the local cloud (sync-pull).
lanesync_py_test(pull test_pull cloud)

# Observability (issue 5): /metrics parsed by Debian's python3-prometheus-client, which is
# installed for Debian's own interpreter; a python3 earlier on PATH (pyenv) may not see it.
# The dashboard test drives Debian's chromium headless; both use the local cloud.
set(LANESYNC_SYSTEM_PYTHON /usr/bin/python3 CACHE FILEPATH
    "Python interpreter that sees Debian's python3-* packages (observability tests)")
function(lanesync_system_py_test name module)
  add_test(NAME integration.${name}
           COMMAND ${LANESYNC_SYSTEM_PYTHON} -m unittest -v ${module}
           WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/integration)
  set_tests_properties(integration.${name} PROPERTIES
    ENVIRONMENT "LANESYNC_BIN=$<TARGET_FILE:lanesync>;LANESYNC_ARTIFACTS=${PROJECT_BINARY_DIR}/test-artifacts;PYTHONDONTWRITEBYTECODE=1"
    TIMEOUT 300 LABELS "integration;observability;${ARGN}")
endfunction()
lanesync_system_py_test(observability test_observability cloud)
lanesync_system_py_test(dashboard test_dashboard cloud browser)

# The multi-terminal harness (issue 4): the short form of every scenario with a fixed seed, so
# a CI failure can be replayed exactly (scripts/harness.sh --quick --seed 20261122).
add_test(NAME harness.quick COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/harness/run-ci.sh)
set_tests_properties(harness.quick PROPERTIES
  ENVIRONMENT "LANESYNC_BIN=$<TARGET_FILE:lanesync>;HARNESS_SEED=20261122"
  TIMEOUT 600 LABELS "harness;cloud")

# Issue 10: the benchmarks' smoke form (small sizes, well under 60 s): it checks that every
# table is produced with non-zero counts and no errors, never the numbers.
add_test(NAME bench.smoke COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/bench.sh --smoke --no-build
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(bench.smoke PROPERTIES TIMEOUT 300 LABELS "bench;cloud")
