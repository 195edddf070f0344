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
lanesync_py_test(api_cli test_api_cli)

# The edge function's own tests against a real local PostgreSQL + Deno (scripts/cloud-up.sh).
add_test(NAME cloud.function COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cloud/run-deno-tests.sh)
set_tests_properties(cloud.function PROPERTIES TIMEOUT 600 LABELS cloud)
lanesync_py_test(cloud test_cloud cloud)
