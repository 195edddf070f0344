#pragma once
/// Private to lanes/: the peer listener on TERMINAL_BIND:TERMINAL_PORT. Accepts connections
/// (TLS first when PEER_TLS_CERT_FILE is set), answers anything but a WebSocket upgrade on
/// /v1/peer with a short HTTP refusal, and runs one server-role session per connection
/// (lanes/peer_session.hpp), each on its own strand.

#include "conf/config.hpp"
#include "lanes/hub.hpp"

#include <cstdint>
#include <memory>

namespace boost::asio {
class io_context;
}

namespace lanesync::lanes {

class listener {
public:
    virtual ~listener() = default;
    /// Binds and listens (throws std::system_error naming the address when it cannot: a
    /// daemon fails loudly), then accepts until close().
    virtual void start() = 0;
    /// Closes the acceptor. Call on the io thread (gossip posts it).
    virtual void close() = 0;
    /// The bound port (useful with TERMINAL_PORT=0 in tests). After start().
    virtual std::uint16_t port() const = 0;
};

/// `cfg` must outlive the listener.
std::shared_ptr<listener> make_listener(boost::asio::io_context& ioc, std::shared_ptr<hub> h,
                                        const conf::config& cfg);

} // namespace lanesync::lanes
