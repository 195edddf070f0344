#include "lanes/listener.hpp"

#include "base/log.hpp"
#include "base/log_limit.hpp"
#include "base/metrics.hpp"
#include "lanes/peer_session.hpp"
#include "lanes/preauth.hpp"
#include "lanes/streams.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <system_error>
#include <utility>

namespace lanesync::lanes {
namespace {

namespace http = beast::http;
using tcp = net::ip::tcp;
namespace ssl = net::ssl;

/// The reason a connection that failed before its session is counted under: a deadline is a
/// timeout, a client that went away is closed, anything else is `other`.
detail::preauth_reason reason_of(const boost::system::error_code& ec,
                                 detail::preauth_reason other) {
    if (ec == beast::error::timeout)
        return detail::preauth_reason::timeout;
    if (ec == net::error::eof || ec == net::error::connection_reset ||
        ec == beast::http::error::end_of_stream || ec == net::error::operation_aborted)
        return detail::preauth_reason::closed;
    return other;
}

std::string remote_of(const net::ip::tcp::socket& sock) {
    boost::system::error_code rec;
    auto ep = sock.remote_endpoint(rec);
    if (rec)
        return {};
    return ep.address().to_string() + ":" + std::to_string(ep.port());
}

/// Server context when PEER_TLS_CERT_FILE/PEER_TLS_KEY_FILE are set.
std::unique_ptr<ssl::context> make_server_tls(const conf::config& cfg) {
    if (cfg.peer_tls_cert_file.empty())
        return nullptr;
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                     ssl::context::single_dh_use);
    boost::system::error_code ec;
    ctx->use_certificate_chain_file(cfg.peer_tls_cert_file, ec);
    if (ec)
        throw std::system_error(ec, "PEER_TLS_CERT_FILE " + cfg.peer_tls_cert_file);
    ctx->use_private_key_file(cfg.peer_tls_key_file, ssl::context::pem, ec);
    if (ec)
        throw std::system_error(ec, "PEER_TLS_KEY_FILE " + cfg.peer_tls_key_file);
    return ctx;
}

class listener_impl : public listener, public std::enable_shared_from_this<listener_impl> {
public:
    listener_impl(net::io_context& ioc, std::shared_ptr<hub> h, const conf::config& cfg)
        : ioc_(ioc), cfg_(cfg), hub_(std::move(h)), acceptor_(ioc),
          open_gauge_(metrics::global().get_gauge(
              "lanesync_peer_connections_open",
              "Connections open on the peer port (authenticated or not)")) {}

    void start() override {
        boost::system::error_code ec;
        auto addr = net::ip::make_address(cfg_.terminal_bind, ec);
        if (ec)
            throw std::system_error(ec, "TERMINAL_BIND " + cfg_.terminal_bind);
        tcp::endpoint ep(addr, cfg_.terminal_port);
        auto where = cfg_.terminal_bind + ":" + std::to_string(cfg_.terminal_port);
        acceptor_.open(ep.protocol(), ec);
        if (!ec)
            acceptor_.set_option(net::socket_base::reuse_address(true), ec);
        if (!ec)
            acceptor_.bind(ep, ec);
        if (!ec)
            acceptor_.listen(net::socket_base::max_listen_connections, ec);
        if (ec)
            throw std::system_error(ec, "cannot listen for peers on " + where);
        port_ = acceptor_.local_endpoint().port();
        server_tls_ = make_server_tls(cfg_);
        detail::register_preauth_metrics();
        log::info("peer.listening", {{"address", cfg_.terminal_bind},
                                     {"port", std::to_string(port_)},
                                     {"scheme", server_tls_ ? "wss" : "ws"}});
        net::co_spawn(acceptor_.get_executor(), accept_loop(), net::detached);
    }

    void close() override {
        boost::system::error_code ec;
        acceptor_.close(ec);
    }

    std::uint16_t port() const override { return port_; }

private:
    /// Counts one open connection (PEER_MAX_CONNECTIONS) from its accept to the end of
    /// serve(); moved into serve().
    class open_guard {
    public:
        explicit open_guard(std::shared_ptr<listener_impl> l) : l_(std::move(l)) {
            l_->open_gauge_.set(static_cast<double>(++l_->open_));
        }
        open_guard(open_guard&& o) noexcept : l_(std::move(o.l_)) {}
        open_guard(const open_guard&) = delete;
        open_guard& operator=(const open_guard&) = delete;
        open_guard& operator=(open_guard&&) = delete;
        ~open_guard() {
            if (l_)
                l_->open_gauge_.set(static_cast<double>(--l_->open_));
        }

    private:
        std::shared_ptr<listener_impl> l_;
    };

    net::awaitable<void> accept_loop() {
        auto self = shared_from_this();
        for (;;) {
            auto strand = net::make_strand(ioc_);
            auto [ec, sock] =
                co_await acceptor_.async_accept(strand, net::as_tuple(net::use_awaitable));
            if (ec) {
                if (ec == net::error::operation_aborted || !acceptor_.is_open())
                    co_return;
                // E.g. EMFILE under a flood: wait a little instead of spinning on the error.
                if (accept_lines_.gate("accept_failed"))
                    log::warn("peer.accept_failed", {{"error", ec.message()}});
                net::steady_timer pause(acceptor_.get_executor());
                pause.expires_after(std::chrono::milliseconds(100));
                auto waiting = pause.async_wait(net::as_tuple(net::use_awaitable));
                co_await std::move(waiting);
                continue;
            }
            tcp::socket s(std::move(sock));
            if (open_.load() >= cfg_.peer_max_connections) {
                // Closed before anything is read: a flood costs an accept and a close.
                detail::note_preauth_failure(detail::preauth_reason::too_many_connections,
                                             remote_of(s),
                                             "over PEER_MAX_CONNECTIONS (" +
                                                 std::to_string(cfg_.peer_max_connections) + ")");
                boost::system::error_code cec;
                s.close(cec);
                continue;
            }
            // Small frames (acks) must not wait for Nagle + delayed ACK (~40 ms on Linux).
            boost::system::error_code nec;
            s.set_option(tcp::no_delay(true), nec);
            auto exec = s.get_executor();
            net::co_spawn(exec, serve(std::move(s), open_guard(self)), net::detached);
        }
    }

    /// One accepted connection: TLS handshake when the listener serves wss://, then the
    /// HTTP upgrade on /v1/peer, then the session.
    net::awaitable<void> serve(tcp::socket sock, open_guard counted) {
        auto self = shared_from_this();
        (void)counted;
        std::string remote = remote_of(sock);
        beast::tcp_stream tcp_layer(std::move(sock));
        tcp_layer.expires_after(tuning::peer_handshake_timeout);
        if (!server_tls_) {
            co_await upgrade(std::move(tcp_layer), remote);
            co_return;
        }
        beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp_layer), *server_tls_);
        auto [tec] = co_await stream.async_handshake(ssl::stream_base::server,
                                                     net::as_tuple(net::use_awaitable));
        if (tec) {
            detail::note_preauth_failure(reason_of(tec, detail::preauth_reason::tls), remote,
                                         "TLS handshake: " + tec.message());
            co_return;
        }
        co_await upgrade(std::move(stream), remote);
    }

    /// Reads the HTTP request; anything but a WebSocket upgrade on /v1/peer gets a short
    /// plain-text refusal. `stream` still has the handshake deadline set.
    template <class Stream> net::awaitable<void> upgrade(Stream stream, std::string remote) {
        using WS = websocket::stream<Stream>;
        beast::flat_buffer buf;
        http::request_parser<http::empty_body> parser;
        parser.header_limit(8192);
        parser.body_limit(0);
        auto [rec, n] =
            co_await http::async_read(stream, buf, parser, net::as_tuple(net::use_awaitable));
        (void)n;
        if (rec) {
            detail::note_preauth_failure(reason_of(rec, detail::preauth_reason::bad_handshake),
                                         remote, "HTTP request: " + rec.message());
            co_return;
        }
        auto req = parser.release();
        http::status refusal{};
        std::string why;
        if (req.target() != "/v1/peer") {
            refusal = http::status::not_found;
            why = "lanesync peer endpoint is /v1/peer\n";
        } else if (!websocket::is_upgrade(req)) {
            refusal = http::status::upgrade_required;
            why = "this port speaks the lanesync peer protocol over WebSocket\n";
        }
        if (!why.empty()) {
            detail::note_preauth_failure(detail::preauth_reason::refused_upgrade, remote,
                                         std::to_string(static_cast<unsigned>(refusal)) + " for " +
                                             std::string(req.target().substr(0, 64)));
            http::response<http::string_body> res{refusal, req.version()};
            res.set(http::field::content_type, "text/plain");
            res.keep_alive(false);
            res.body() = why;
            res.prepare_payload();
            auto [wec, wn] =
                co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
            (void)wec;
            (void)wn;
            beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, rec);
            co_return;
        }
        WS ws(std::move(stream));
        beast::get_lowest_layer(ws).expires_never();
        configure(ws, cfg_.max_message_bytes);
        auto [aec] = co_await ws.async_accept(req, net::as_tuple(net::use_awaitable));
        if (aec) {
            detail::note_preauth_failure(reason_of(aec, detail::preauth_reason::bad_handshake),
                                         remote, "WebSocket upgrade: " + aec.message());
            co_return;
        }
        auto session = run_session<WS>(std::move(ws), hub_, false, std::string());
        co_await std::move(session);
    }

    net::io_context& ioc_;
    const conf::config& cfg_;
    std::shared_ptr<hub> hub_;
    tcp::acceptor acceptor_;
    std::unique_ptr<ssl::context> server_tls_; ///< set when the listener serves wss://
    std::uint16_t port_ = 0;
    std::atomic<std::size_t> open_{0}; ///< connections in serve(), checked at accept
    metrics::gauge& open_gauge_;
    log::limited_lines accept_lines_{"peer.accept_failed"};
};

} // namespace

std::shared_ptr<listener> make_listener(net::io_context& ioc, std::shared_ptr<hub> h,
                                        const conf::config& cfg) {
    return std::make_shared<listener_impl>(ioc, std::move(h), cfg);
}

} // namespace lanesync::lanes
