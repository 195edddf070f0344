#pragma once
/// Private to lanes/*.cpp: the two WebSocket stream types a peer session runs over and the
/// options every peer WebSocket gets. Beast is heavy: never include this from a header that
/// leaves lanes/.

#include "base/tuning.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <type_traits>

namespace lanesync::lanes {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

using ws_plain = websocket::stream<beast::tcp_stream>;
using ws_tls = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;

template <class WS> constexpr bool is_tls = !std::is_same_v<WS, ws_plain>;

/// Options every peer WebSocket gets, either role (STYLE habit 4: after the handshake the
/// TCP timeout is off and the WebSocket's own idle timeout + pings take over).
template <class WS> void configure(WS& ws, std::size_t max_message_bytes) {
    websocket::stream_base::timeout t{};
    t.handshake_timeout = tuning::peer_handshake_timeout;
    t.idle_timeout = tuning::peer_idle_timeout;
    t.keep_alive_pings = true;
    ws.set_option(t);
    // A batch is capped at peer_batch_max_bytes by senders, but one message may be as large as
    // MAX_MESSAGE_BYTES; leave room for both.
    ws.read_message_max(std::max(tuning::peer_max_frame_bytes, 2 * max_message_bytes + 65536));
    ws.set_option(websocket::stream_base::decorator(
        [](auto& m) { m.set(beast::http::field::server, "lanesync/" LANESYNC_VERSION); }));
}

} // namespace lanesync::lanes
