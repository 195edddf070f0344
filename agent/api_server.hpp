#pragma once
/// The local HTTP API on 127.0.0.1:LOCAL_API_PORT (SPEC section 5, docs/api.md).
/// Heavy Boost.Beast headers stay in api_server.cpp.

#include "agent/reload.hpp"
#include "cloud/puller.hpp"
#include "cloud/uploader.hpp"
#include "conf/config.hpp"
#include "lanes/gossip.hpp"
#include "outbox/outbox.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace boost::asio {
class io_context;
}
namespace lanesync::outbox {
class async_store;
}

namespace lanesync::agent {

/// What the API serves from. Everything outlives the server. gossip and uploader may be null
/// (unit tests of the API alone). Every outbox access goes through `outbox_async` (reads on the
/// outbox reader thread, writes on its writer; completions back on the session strand); when
/// null the server makes its own adapter over `store` on the io_context.
struct api_deps {
    const conf::config* cfg = nullptr;
    outbox::store* store = nullptr;
    lanes::gossip* gossip = nullptr;
    cloud::uploader* uploader = nullptr;
    outbox::async_store* outbox_async = nullptr;
    cloud::puller* puller = nullptr; ///< may be null; POST /v1/sync also pulls at once
    /// POST /v1/reload: re-reads the env file and applies it (agent/node.cpp), on the io
    /// thread. Unset: 409 "reload is not available".
    std::function<reload_result(const std::string& trigger)> reload = {};
    /// The last reload's result for the status document (nullopt before the first).
    std::function<std::optional<reload_result>()> last_reload = {};
};

class api_server {
public:
    api_server(boost::asio::io_context& ioc, api_deps deps);
    ~api_server();
    api_server(const api_server&) = delete;
    api_server& operator=(const api_server&) = delete;

    /// Binds 127.0.0.1:cfg.local_api_port (0 = any free port) and starts accepting. Throws
    /// std::system_error naming the address when it cannot bind.
    void start();
    /// Stops accepting and closes idle connections; requests in flight finish. Thread-safe.
    void stop(std::function<void()> done);
    std::uint16_t port() const;

    /// From the outbox's commit listener (the writer thread): wakes the requests waiting for
    /// acks when messages may have moved to peer_ack, cloud_ack or failed, and the waits for
    /// catalog changes (GET /v1/changes?timeout_ms) after a catalog page. Thread-safe, cheap.
    void on_commit(const outbox::commit_info& ci);

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace lanesync::agent
