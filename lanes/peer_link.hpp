#pragma once
/// Private to lanes/: one supervised outgoing link to a PEER_TERMINALS URL (STYLE habit 7,
/// LiteCore's C4RemoteReplicator): connects, runs one session (lanes/peer_session.hpp), and
/// after it ends classifies the ending (protocol/ending.hpp) and waits before connecting again:
/// full jitter up to tuning::peer_reconnect_max after a transient ending, up to
/// tuning::peer_reconnect_permanent after a permanent one. An inbound session from the same
/// peer that works ends the wait at once.

#include "conf/config.hpp"
#include "lanes/hub.hpp"

#include <memory>

namespace boost::asio {
class io_context;
namespace ssl {
class context;
}
} // namespace boost::asio

namespace lanesync::lanes {

class peer_link {
public:
    virtual ~peer_link() = default;
    /// Starts the supervisor on its own strand. Call once.
    virtual void start() = 0;
    /// Stops reconnecting and cancels a connect in progress. Thread-safe.
    virtual void stop() = 0;
    /// The supervisor's coroutine returned. Thread-safe.
    virtual bool finished() const = 0;
};

/// `tls` (for wss:// URLs) must outlive the link.
std::shared_ptr<peer_link> make_peer_link(boost::asio::io_context& ioc, std::shared_ptr<hub> h,
                                          conf::peer_url url, boost::asio::ssl::context& tls);

} // namespace lanesync::lanes
