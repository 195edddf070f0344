#pragma once
/// Private to the agent and its tests: engineering limits of the local API that a unit test
/// must shrink (a 30 s request timeout does not fit in a test). Not for production code.

#include <chrono>
#include <cstddef>

namespace lanesync::agent::test_hooks {

/// Replaces tuning::api_request_timeout for api_servers started after the call; zero restores
/// the default. Process-wide.
void set_api_request_timeout(std::chrono::milliseconds timeout);

/// Replaces tuning::api_max_waiters for api_servers made after the call; zero restores the
/// default. Process-wide.
void set_api_max_waiters(std::size_t n);

} // namespace lanesync::agent::test_hooks
