#include "cloud/http_client.hpp"

#include "base/log.hpp"
#include "base/tls.hpp"
#include "cloud/key_format.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

namespace lanesync::cloud {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;

namespace {

/// Response headers from the Supabase gateway are small; this is generous.
constexpr std::uint32_t response_header_limit = 64u << 10;

/// The error-code helper (STYLE habit 6): did the other side close the connection rather
/// than something break? These are the codes a kept-alive connection that the server closed
/// while idle produces on our next request:
/// - http::error::end_of_stream / net::error::eof: orderly close before any response byte;
/// - connection_reset / connection_aborted / broken_pipe: the close raced our write;
/// - ssl::error::stream_truncated: the server closed the TLS connection without a
///   close_notify, which most HTTP servers do when they drop an idle connection.
bool closed_by_peer(const error_code& ec) {
    return ec == http::error::end_of_stream || ec == net::error::eof ||
           ec == net::error::connection_reset || ec == net::error::connection_aborted ||
           ec == net::error::broken_pipe || ec == ssl::error::stream_truncated ||
           ec == http::error::partial_message;
}

/// "connecting to" -> "connect", for "(during ...)" style messages.
std::string phase_noun(const char* phase) {
    std::string_view p(phase);
    if (p.starts_with("connecting"))
        return "while connecting";
    if (p.starts_with("TLS"))
        return "during the TLS handshake";
    if (p.starts_with("sending"))
        return "while sending the request";
    if (p.starts_with("reading"))
        return "while reading the response";
    return std::string(p);
}

} // namespace

const char* outcome_label(http_result::failure f) {
    switch (f) {
    case http_result::failure::none:
        return "ok";
    case http_result::failure::cancelled:
        return "cancelled";
    case http_result::failure::timeout:
        return "timeout";
    case http_result::failure::network:
        return "network";
    case http_result::failure::tls:
        return "tls";
    case http_result::failure::bad_response:
        return "bad_response";
    }
    return "network";
}

struct http_client::outgoing : http::request<http::string_body> {};

struct http_client::connection {
    std::optional<beast::tcp_stream> tcp;                    ///< plain http://
    std::optional<beast::ssl_stream<beast::tcp_stream>> tls; ///< https://
    beast::flat_buffer buffer;
    std::uint64_t requests = 0; ///< answers read on this connection
    bool established = false;   ///< connected (and TLS handshake done)

    beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *tcp; }
};

struct http_client::exchange_result {
    error_code ec;
    const char* phase = "";
    bool got_response_bytes = false;
    http_result answer;
};

http_client::http_client(net::any_io_executor ex, wire::endpoint ep, ssl::context* tls,
                         std::string key, std::chrono::milliseconds timeout,
                         std::size_t max_response_bytes)
    : ex_(ex), ep_(std::move(ep)), tls_(tls), key_(std::move(key)), timeout_(timeout),
      max_response_bytes_(max_response_bytes), resolver_(ex) {
    if (ep_.tls && !tls_)
        throw std::logic_error("http_client: https endpoint without a TLS context");
}

http_client::~http_client() = default;

void http_client::cancel() {
    cancelled_ = true;
    resolver_.cancel();
    if (conn_) {
        // Closing the socket makes the pending operation complete with operation_aborted.
        conn_->lowest().close();
    }
}

void http_client::drop() {
    if (conn_) {
        // No TLS close_notify: the server drops idle connections the same way, and waiting
        // for a shutdown answer from a broken connection would only add a timeout.
        conn_->lowest().close();
        conn_.reset();
    }
}

http_result http_client::failure(const error_code& ec, const char* phase) const {
    using failure = http_result::failure;
    http_result r;
    if (cancelled_ || ec == net::error::operation_aborted) {
        r.fail = failure::cancelled;
        r.error = "cancelled";
    } else if (ec == beast::error::timeout) {
        r.fail = failure::timeout;
        r.error = "no answer from " + ep_.origin() + " within " + std::to_string(timeout_.count()) +
                  " ms (" + phase_noun(phase) + ")";
    } else if (ec == http::error::body_limit) {
        r.fail = failure::bad_response;
        r.error = "response from " + ep_.origin() + " is larger than " +
                  std::to_string(max_response_bytes_) + " bytes";
    } else if (closed_by_peer(ec)) {
        r.fail = failure::network;
        r.error = ep_.origin() + " closed the connection (" + phase_noun(phase) + ")";
    } else if (ec.category() == http::make_error_code(http::error::end_of_stream).category() ||
               ec == http::error::header_limit) {
        // Any other Beast HTTP parser error: the bytes were not an HTTP/1.1 response.
        r.fail = failure::bad_response;
        r.error = "malformed HTTP response from " + ep_.origin() + ": " + ec.message();
    } else {
        r.fail = failure::network;
        r.error = std::string(phase) + " " + ep_.origin() + " failed: " + ec.message();
    }
    return r;
}

net::awaitable<std::optional<http_result>> http_client::connect(clock_type::time_point deadline) {
    conn_ = std::make_unique<connection>();
    if (ep_.tls) {
        conn_->tls.emplace(ex_, *tls_);
        // SNI (not for IP literals, RFC 6066 section 3) and OpenSSL's own host check, name or
        // IP, which records a precise reason ("hostname mismatch") in the verify result for
        // the status line (base/tls.hpp, the one TLS client policy).
        std::string why;
        if (!tls::prepare_client(conn_->tls->native_handle(), ep_.host, why)) {
            http_result r;
            r.fail = http_result::failure::tls;
            r.error = std::move(why);
            drop();
            co_return r;
        }
    } else {
        conn_->tcp.emplace(ex_);
    }

    // Resolve (bounded by the system resolver; an IP literal resolves at once).
    const std::string service = std::to_string(ep_.port); // no temporaries across co_await
    auto [rec, endpoints] = co_await resolver_.async_resolve(
        ep_.host, service, net::ip::resolver_base::numeric_service, as_tuple_awaitable);
    if (rec || cancelled_) {
        auto r = failure(rec ? rec : net::error::operation_aborted, "resolving");
        if (r.fail == http_result::failure::network)
            r.error = "cannot resolve " + ep_.host + ": " + rec.message();
        drop();
        co_return r;
    }

    // TCP connect, within the request deadline.
    auto& lowest = conn_->lowest();
    lowest.expires_at(deadline);
    auto [cec, peer] = co_await lowest.async_connect(endpoints, as_tuple_awaitable);
    if (cec || cancelled_) {
        auto r = failure(cec ? cec : net::error::operation_aborted, "connecting to");
        drop();
        co_return r;
    }
    // Request/response traffic: do not let Nagle hold back the tail of a request.
    boost::system::error_code opt_ec;
    lowest.socket().set_option(net::ip::tcp::no_delay(true), opt_ec);
    log::debug("cloud.http.connected",
               {{"peer", peer.address().to_string() + ":" + std::to_string(peer.port())}});

    // TLS handshake with certificate and hostname verification.
    if (conn_->tls) {
        if (auto failed = co_await handshake(deadline))
            co_return failed;
    }
    conn_->established = true;
    ++connections_;
    co_return std::nullopt;
}

net::awaitable<std::optional<http_result>> http_client::handshake(clock_type::time_point deadline) {
    conn_->lowest().expires_at(deadline);
    auto [hec] = co_await conn_->tls->async_handshake(ssl::stream_base::client, as_tuple_awaitable);
    if (!hec && !cancelled_)
        co_return std::nullopt;
    auto r = failure(hec ? hec : net::error::operation_aborted, "TLS handshake with");
    if (r.fail == http_result::failure::network) {
        r.fail = http_result::failure::tls;
        long verify = SSL_get_verify_result(conn_->tls->native_handle());
        if (verify != X509_V_OK)
            r.error = "TLS certificate verification failed for " + ep_.host + ": " +
                      X509_verify_cert_error_string(verify);
        else
            r.error = "TLS handshake with " + ep_.origin() + " failed: " + hec.message();
    }
    drop();
    co_return r;
}

template <class Stream>
static net::awaitable<void>
write_and_read(Stream& stream, beast::tcp_stream& lowest, beast::flat_buffer& buffer,
               const http::request<http::string_body>& req, clock_type::time_point deadline,
               std::size_t max_response_bytes, error_code& ec, const char*& phase, bool& got_some,
               http::response<http::string_body>& res) {
    // Send the request.
    phase = "sending the request to";
    lowest.expires_at(deadline);
    auto [wec, written] = co_await http::async_write(stream, req, as_tuple_awaitable);
    (void)written;
    if (wec) {
        ec = wec;
        co_return;
    }
    // Read the answer, with limits on header and body size.
    phase = "reading the response from";
    http::response_parser<http::string_body> parser;
    parser.header_limit(response_header_limit);
    parser.body_limit(max_response_bytes);
    lowest.expires_at(deadline);
    auto [rec, read] = co_await http::async_read(stream, buffer, parser, as_tuple_awaitable);
    (void)read;
    got_some = parser.got_some();
    if (rec) {
        ec = rec;
        co_return;
    }
    lowest.expires_never();
    res = parser.release();
}

net::awaitable<http_client::exchange_result>
http_client::exchange(const outgoing& req, clock_type::time_point deadline) {
    exchange_result out;
    http::response<http::string_body> res;
    if (conn_->tls)
        co_await write_and_read(*conn_->tls, conn_->lowest(), conn_->buffer, req, deadline,
                                max_response_bytes_, out.ec, out.phase, out.got_response_bytes,
                                res);
    else
        co_await write_and_read(*conn_->tcp, conn_->lowest(), conn_->buffer, req, deadline,
                                max_response_bytes_, out.ec, out.phase, out.got_response_bytes,
                                res);
    if (out.ec)
        co_return out;
    ++conn_->requests;
    out.answer.status = static_cast<int>(res.result_int());
    out.answer.body = std::move(res.body());
    if (!res.keep_alive())
        drop(); // "Connection: close" or HTTP/1.0: the next request opens a new connection
    co_return out;
}

net::awaitable<http_result> http_client::post(std::string body) {
    auto op = send("POST", ep_.target, std::move(body)); // a named awaitable (GCC 12)
    co_return co_await std::move(op);
}

void http_client::set_user_agent(std::string user_agent) {
    user_agent_ = std::move(user_agent);
}

net::awaitable<http_result> http_client::send(std::string method, std::string target,
                                              std::string body) {
    const auto verb = http::string_to_verb(method);
    if (verb == http::verb::unknown)
        throw std::invalid_argument("http_client: unknown HTTP method " + method);
    if (cancelled_)
        co_return failure(net::error::operation_aborted, "");

    outgoing req;
    req.method(verb);
    req.target(target);
    req.version(11);
    req.set(http::field::host, ep_.host_header);
    req.set(http::field::user_agent, user_agent_);
    if (!body.empty())
        req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "application/json");
    // apikey always; Bearer only for a JWT (the legacy service_role key): an sb_secret_ key is
    // not a JWT and a gateway that verifies the bearer would refuse it (cloud/key_format.hpp).
    if (!key_.empty()) {
        req.set("apikey", key_);
        if (is_jwt_shaped(key_))
            req.set(http::field::authorization, "Bearer " + key_);
    }
    req.keep_alive(true);
    req.body() = std::move(body);
    req.prepare_payload();

    for (int round = 0;; ++round) {
        auto deadline = clock_type::now() + timeout_;
        bool reused = conn_ && conn_->established;
        if (!reused) {
            if (auto failed = co_await connect(deadline))
                co_return *failed;
        }
        auto ex = co_await exchange(req, deadline);
        if (!ex.ec && !cancelled_)
            co_return std::move(ex.answer);

        auto r = failure(ex.ec ? ex.ec : net::error::operation_aborted, ex.phase);
        drop();
        // A kept-alive connection the server closed while idle fails on our next request
        // before any response byte: send once more on a fresh connection. The function is
        // idempotent per message id, so a resend can at worst produce "duplicate" answers.
        bool stale = reused && round == 0 && r.fail == http_result::failure::network &&
                     !ex.got_response_bytes && closed_by_peer(ex.ec);
        if (!stale)
            co_return r;
        log::debug("cloud.http.stale_connection", {{"error", ex.ec.message()}});
    }
}

std::unique_ptr<ssl::context> make_cloud_tls(const std::string& ca_file) {
    tls::trust_roots roots{.system_store = true, .ca_files = {}};
    if (!ca_file.empty())
        roots.ca_files.push_back(ca_file);
    try {
        return tls::make_client_context(roots);
    } catch (const std::runtime_error& e) {
        // "<file>: cannot load CA certificates: ..." names the setting for the operator.
        if (!ca_file.empty() && std::string_view(e.what()).starts_with(ca_file))
            throw std::runtime_error("SUPABASE_CA_FILE " + std::string(e.what()));
        throw;
    }
}

} // namespace lanesync::cloud
