#pragma once
/// One keep-alive HTTP/1.1 connection to the edge function, plain or TLS. Used by the uploader
/// and by the CLI (agent/cli_http.cpp, against a running agent's local API); it pulls in Asio
/// headers, so nothing else includes it.
///
/// Not thread-safe: every call, cancel() included, runs on the uploader's strand, and one
/// post() is in flight at a time. The connection is opened on first use and kept while the
/// server keeps it alive; a request on a kept-alive connection that the server had already
/// closed is sent once more on a fresh connection (that is not a failure).

#include "cloud/wire.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

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

/// What one post() produced: an HTTP answer (`fail == none`, any status) or no answer.
struct http_result {
    enum class failure {
        none,         ///< an answer arrived: see status and body
        cancelled,    ///< cancel() was called
        timeout,      ///< the request did not finish within the timeout
        network,      ///< resolve/connect failed, or the connection broke
        tls,          ///< TLS handshake or certificate verification failed
        bad_response, ///< not HTTP, or over the size limits
    };
    failure fail = failure::none;
    int status = 0;
    std::string body;
    std::string error; ///< when fail != none: one line, built from error categories (no secrets)
};

/// Metrics label for a failure ("network", "timeout", "tls", "bad_response").
const char* outcome_label(http_result::failure f);

class http_client {
public:
    /// `tls` is required for an https endpoint and must outlive the client. `key` goes in the
    /// Authorization and apikey headers and nowhere else.
    http_client(boost::asio::any_io_executor ex, wire::endpoint ep, boost::asio::ssl::context* tls,
                std::string key, std::chrono::milliseconds timeout, std::size_t max_response_bytes);
    ~http_client();
    http_client(const http_client&) = delete;
    http_client& operator=(const http_client&) = delete;

    /// POSTs `body` (JSON) to the endpoint. Never throws for network conditions.
    boost::asio::awaitable<http_result> post(std::string body);

    /// One `method` ("GET", "POST", ...) request to `target` on the endpoint's host, with the
    /// same connection, timeout and retry rules as post(); `body` (JSON) may be empty (no
    /// Content-Type then), and an empty key sends no Authorization/apikey header. The CLI uses
    /// it against a running agent's local API (agent/cli_http.cpp).
    boost::asio::awaitable<http_result> send(std::string method, std::string target,
                                             std::string body);

    /// Aborts the request in flight (it completes with failure::cancelled) and closes the
    /// connection. Sticky: later posts fail at once.
    void cancel();

    /// Connections opened so far (keep-alive tests and the debug log).
    std::uint64_t connections_opened() const { return connections_; }

private:
    struct connection;
    struct request;
    struct exchange_result;

    boost::asio::awaitable<std::optional<http_result>>
    connect(std::chrono::steady_clock::time_point deadline);
    boost::asio::awaitable<exchange_result>
    exchange(const request& req, std::chrono::steady_clock::time_point deadline);
    http_result failure(const boost::system::error_code& ec, const char* phase) const;
    void drop();

    boost::asio::any_io_executor ex_;
    wire::endpoint ep_;
    boost::asio::ssl::context* tls_;
    std::string key_;
    std::chrono::milliseconds timeout_;
    std::size_t max_response_bytes_;
    boost::asio::ip::tcp::resolver resolver_;
    std::unique_ptr<connection> conn_;
    bool cancelled_ = false;
    std::uint64_t connections_ = 0;
};

} // namespace lanesync::cloud
