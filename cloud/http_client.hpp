#pragma once
/// One keep-alive HTTP/1.1 connection to one origin, plain or TLS: the uploader's connection
/// to the edge function (post()), and any other client that needs one request-at-a-time
/// (send(), e.g. the CLI against the local API). It pulls in Asio headers: include it from .cpp
/// files only.
///
/// Not thread-safe: every call, cancel() included, runs on one executor (the uploader's
/// strand; the CLI's own io_context), and one post()/send() is in flight at a time. The connection
/// is opened on first use and kept while the server keeps it alive; a request on a kept-alive
/// connection that the server had already closed is sent once more on a fresh connection (that is
/// not a failure).

#include "cloud/http_result.hpp"
#include "cloud/wire.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace lanesync::cloud {

/// `co_await op(as_tuple_awaitable)`: the error code as a value instead of an exception (the
/// client, the uploader and the puller).
inline constexpr auto as_tuple_awaitable = boost::asio::as_tuple(boost::asio::use_awaitable);

class http_client {
public:
    /// `tls` is required for an https endpoint and must outlive the client. `key` goes in the
    /// apikey header, and in `Authorization: Bearer` too when it is JWT-shaped
    /// (cloud/key_format.hpp), and nowhere else.
    http_client(boost::asio::any_io_executor ex, wire::endpoint ep, boost::asio::ssl::context* tls,
                std::string key, std::chrono::milliseconds timeout, std::size_t max_response_bytes);
    ~http_client();
    http_client(const http_client&) = delete;
    http_client& operator=(const http_client&) = delete;

    /// POSTs `body` (JSON) to the endpoint. Never throws for network conditions.
    boost::asio::awaitable<http_result> post(std::string body);

    /// One `method` ("GET", "POST", ...) request to `target` on the endpoint's origin (e.g. the
    /// CLI's GET /v1/status on the local API), with post()'s connection handling, deadline,
    /// limits and failure texts. `body` is sent as JSON when not empty (no Content-Type when
    /// empty). With an empty `key` no apikey/Authorization header is sent. A request on a
    /// kept-alive connection the server had closed is sent once more, so use one client per
    /// non-idempotent request when that matters. Throws std::invalid_argument for an unknown
    /// method; never for network conditions.
    boost::asio::awaitable<http_result> send(std::string method, std::string target,
                                             std::string body = {});

    /// The deadline of the next requests (connect + TLS + request + response), given at
    /// construction until changed (the uploader adapts it: cloud/pacing.hpp).
    void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

    /// The key of the next requests (a rotated SUPABASE_SERVICE_KEY); a request in flight keeps
    /// the one it was sent with.
    void set_key(std::string key) { key_ = std::move(key); }

    /// The User-Agent header (default "lanesync/0.1.0"). Call before the first request.
    void set_user_agent(std::string user_agent);

    /// Aborts the request in flight (it completes with failure::cancelled) and closes the
    /// connection. Sticky: later posts fail at once.
    void cancel();

    /// Connections opened so far (keep-alive tests and the debug log).
    std::uint64_t connections_opened() const { return connections_; }

private:
    struct connection;
    struct outgoing;
    struct exchange_result;

    boost::asio::awaitable<std::optional<http_result>>
    connect(std::chrono::steady_clock::time_point deadline);
    boost::asio::awaitable<std::optional<http_result>>
    handshake(std::chrono::steady_clock::time_point deadline);
    boost::asio::awaitable<exchange_result>
    exchange(const outgoing& req, std::chrono::steady_clock::time_point deadline);
    http_result failure(const boost::system::error_code& ec, const char* phase) const;
    void drop();

    boost::asio::any_io_executor ex_;
    wire::endpoint ep_;
    boost::asio::ssl::context* tls_;
    std::string key_;
    std::string user_agent_ = "lanesync/0.1.0";
    std::chrono::milliseconds timeout_;
    std::size_t max_response_bytes_;
    boost::asio::ip::tcp::resolver resolver_;
    std::unique_ptr<connection> conn_;
    bool cancelled_ = false;
    std::uint64_t connections_ = 0;
};

/// The cloud's trust roots (STYLE TLS checklist, base/tls.hpp): the system store plus
/// SUPABASE_CA_FILE when set (`ca_file`), for the uploader and the puller alike. SNI and the
/// host check are set per connection. Throws std::runtime_error naming SUPABASE_CA_FILE when
/// that file cannot be loaded.
std::unique_ptr<boost::asio::ssl::context> make_cloud_tls(const std::string& ca_file);

} // namespace lanesync::cloud
