#pragma once
/// A running lane: wires the outbox, the peer gossip, the cloud uploader and the local API on
/// one io_context, and stops them in order on SIGTERM/SIGINT (docs/architecture.md).

#include "conf/config.hpp"

namespace lanesync::agent {

/// Runs the agent in the foreground until SIGTERM/SIGINT. Returns the process exit code:
/// 0 after a clean stop, 1 on a runtime failure (e.g. a port already in use, outbox unusable).
int run_agent(const conf::config& cfg);

} // namespace lanesync::agent
