#pragma once
/// Private to lanes/: one authenticated WebSocket connection to a peer lane, either role.
/// The protocol's rules live in protocol/peer_machine.hpp; a session only moves bytes: it
/// reads frames (one coroutine), writes them from a bounded queue (one do_write/on_write
/// chain), and carries out the machine's actions against the outbox and the hub.
///
/// Thread contract: a session runs on its stream's strand; other components only post to it
/// (session_handle). Defined in peer_session.cpp for ws_plain and ws_tls (lanes/streams.hpp).

#include "lanes/hub.hpp"
#include "protocol/ending.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace lanesync::lanes {

/// How a session ended: the text for logs and status, and what classify_ending needs.
struct session_result {
    std::string reason; ///< e.g. "closed by peer (<code>): authentication failed"
    protocol::session_stage stage = protocol::session_stage::authenticating;
    protocol::decided_by who = protocol::decided_by::transport;
    std::uint16_t close_code = 0; ///< the close code sent (who == us) or received (peer)
    std::string close_reason;     ///< the reason sent with it, or received
    std::string claimed_id;       ///< the peer's terminal id as it claimed it, verified or not
    int version = 0;              ///< the protocol version offered (client) or served (server)
    bool authenticated() const { return stage == protocol::session_stage::authenticated; }
};

/// Runs one session over an upgraded WebSocket (client role when `outbound`) to its end.
/// `url` names the link in logs and status (empty for an accepted connection).
/// `offer_version`: the protocol version an outbound session offers in its hello (0: the
/// highest, tuning::peer_protocol_version); an inbound session serves what the hello offers.
template <class WS>
boost::asio::awaitable<session_result> run_session(WS ws, std::shared_ptr<hub> h, bool outbound,
                                                   std::string url, int offer_version = 0);

/// Registers the peer metric series (so /metrics lists them at 0 before any session).
void register_peer_metrics();

} // namespace lanesync::lanes
