#pragma once
/// Peer replication (SPEC section 7, docs/protocol.md): the WebSocket listener on
/// TERMINAL_PORT, one supervised outgoing link per PEER_TERMINALS URL, and the gossip rules
/// that move messages between lanes until every lane holds every message.
///
/// Heavy Boost.Beast headers stay in lanes/*.cpp; this header only forward-declares Asio.

#include "conf/config.hpp"
#include "outbox/outbox.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace lanesync::lanes {

/// One row of /v1/status "peers": a configured URL, or an inbound peer not in the config.
struct peer_status {
    std::string url;                     ///< configured URL; empty for an inbound-only peer
    std::string terminal_id;             ///< authenticated id; empty until first authenticated
    bool connected = false;              ///< an authenticated session is up (either direction)
    bool outbound = false;               ///< the session sending to this peer is one we dialed
    std::uint64_t acked_through_seq = 0; ///< own seq this peer confirmed holding
    std::optional<std::int64_t> last_ack_at_ms;
    std::uint64_t lag = 0;                          ///< own last seq - acked_through_seq
    std::string last_error;                         ///< why the last attempt/session ended
    std::optional<std::int64_t> next_attempt_at_ms; ///< outgoing link: reconnect time
    /// Outgoing link: its last ending was permanent (protocol/ending.hpp: wrong PEER_SECRET,
    /// other store, no protocol version in common, outbox lost), so it waits the long backoff.
    bool permanent_failure = false;
    std::string failure; ///< the permanent ending's name, e.g. "wrong PEER_SECRET"
    std::uint64_t batches_sent = 0, batches_received = 0;
};

class gossip {
public:
    /// `store` must outlive the gossip. Does not start anything.
    gossip(boost::asio::io_context& ioc, outbox::store& store, const conf::config& cfg);
    ~gossip();
    gossip(const gossip&) = delete;
    gossip& operator=(const gossip&) = delete;

    /// Binds the listener (throws std::system_error naming the address when it cannot bind:
    /// a daemon fails loudly) and starts the outgoing links. Call before running the io_context.
    void start();
    /// Closes the listener and every session with a close frame; `done` runs once all are gone
    /// (or after tuning::shutdown_grace). Thread-safe.
    void stop(std::function<void()> done);

    /// New data was committed (own or replicas): wake the senders. Thread-safe.
    void notify();

    /// The port the listener is bound to (useful with TERMINAL_PORT=0 in tests).
    std::uint16_t port() const;
    /// Thread-safe snapshot.
    std::vector<peer_status> status() const;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace lanesync::lanes
