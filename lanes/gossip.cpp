#include "lanes/gossip.hpp"

#include "lanes/hub.hpp"
#include "lanes/peer_session.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/rand.h>

#include <algorithm>
#include <atomic>

namespace lanesync::lanes {
namespace {

namespace http = beast::http;
using tcp = net::ip::tcp;
namespace ssl = net::ssl;
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
        [](auto& m) { m.set(http::field::server, "lanesync/" LANESYNC_VERSION); }));
}

std::uint64_t random_u64() {
    std::uint64_t v = 0;
    RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v);
    return v;
}

/// Full jitter: uniform in [0, min(max, base * 2^attempt)].
std::chrono::milliseconds reconnect_delay(std::uint32_t attempt) {
    auto base =
        std::chrono::duration_cast<std::chrono::milliseconds>(tuning::peer_reconnect_base).count();
    auto cap =
        std::chrono::duration_cast<std::chrono::milliseconds>(tuning::peer_reconnect_max).count();
    std::int64_t ceiling = base;
    for (std::uint32_t i = 0; i < attempt && ceiling < cap; ++i)
        ceiling *= 2;
    ceiling = std::min(ceiling, cap);
    return std::chrono::milliseconds(
        static_cast<std::int64_t>(random_u64() % static_cast<std::uint64_t>(ceiling + 1)));
}

/// A TLS failure in words an operator can act on (certificate problems named as such).
std::string tls_error_text(const boost::system::error_code& ec, SSL* native) {
    long verify = SSL_get_verify_result(native);
    if (verify != X509_V_OK)
        return std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
    return ec.message();
}

/// Client context for wss:// links: verify peers against PEER_CA_FILE or the system store.
ssl::context make_client_tls(const conf::config& cfg) {
    ssl::context ctx(ssl::context::tls_client);
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ctx.set_verify_mode(ssl::verify_peer);
    if (!cfg.peer_ca_file.empty())
        ctx.load_verify_file(cfg.peer_ca_file);
    else
        ctx.set_default_verify_paths();
    return ctx;
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

} // namespace

/// One supervised outgoing link to a PEER_TERMINALS URL: connects, runs a session, and after
/// it ends waits a jittered backoff and connects again (STYLE habit 7).
class peer_link : public std::enable_shared_from_this<peer_link> {
public:
    peer_link(net::io_context& ioc, std::shared_ptr<hub> h, conf::peer_url url, ssl::context& tls)
        : strand_(net::make_strand(ioc)), timer_(strand_), hub_(std::move(h)), url_(std::move(url)),
          tls_(tls) {}

    void start() {
        net::co_spawn(strand_, run(), [self = shared_from_this()](std::exception_ptr e) {
            if (e) {
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    log::error("peer.link_crashed",
                               {{"url", self->url_.text}, {"error", ex.what()}});
                }
            }
            self->finished_ = true;
        });
    }

    /// Thread-safe.
    void stop() {
        net::post(strand_, [self = shared_from_this()] {
            self->stopping_ = true;
            self->timer_.cancel();
            if (self->connecting_)
                self->connecting_->cancel();
        });
    }

    bool finished() const { return finished_; }

private:
    net::awaitable<void> run() {
        std::uint32_t attempt = 0;
        while (!stopping_) {
            std::string why;
            bool authenticated = false;
            auto began = std::chrono::steady_clock::now();
            if (url_.tls) {
                auto session = co_await connect<ws_tls>(why);
                if (session) {
                    why = co_await session->run();
                    authenticated = session->authenticated();
                }
            } else {
                auto session = co_await connect<ws_plain>(why);
                if (session) {
                    why = co_await session->run();
                    authenticated = session->authenticated();
                }
            }
            if (stopping_)
                break;
            // Start over from the shortest delay only after a session that lived a while: one
            // that is refused right after authenticating (e.g. an id conflict) must back off
            // like a failed connect instead of reconnecting in a hot loop.
            bool lasted = std::chrono::steady_clock::now() - began >= tuning::peer_session_proven;
            attempt = authenticated && lasted ? 0 : attempt + 1;
            auto delay = reconnect_delay(attempt);
            hub_->link_state(url_.text, why, protocol::now_ms() + delay.count());
            log::debug(
                "peer.reconnect_scheduled",
                {{"url", url_.text}, {"in_ms", std::to_string(delay.count())}, {"reason", why}});
            timer_.expires_after(delay);
            co_await timer_.async_wait(net::as_tuple(net::use_awaitable));
        }
    }

    /// TCP connect (+ TLS handshake for wss://) + WebSocket handshake. nullptr (with `why`)
    /// on failure.
    template <class WS>
    net::awaitable<std::shared_ptr<peer_session<WS>>> connect(std::string& why) {
        tcp::resolver resolver(strand_);
        const std::string port = std::to_string(url_.port);
        const std::string host_header = url_.host + ":" + port;
        auto [rec, results] =
            co_await resolver.async_resolve(url_.host, port, net::as_tuple(net::use_awaitable));
        if (rec) {
            why = "cannot resolve " + url_.host + ": " + rec.message();
            co_return nullptr;
        }
        auto ws = make_stream<WS>();
        auto& tcp_layer = beast::get_lowest_layer(ws);
        connecting_ = &tcp_layer;
        tcp_layer.expires_after(tuning::peer_handshake_timeout);
        auto [cec, ep] =
            co_await tcp_layer.async_connect(results, net::as_tuple(net::use_awaitable));
        (void)ep;
        if (cec || stopping_) {
            connecting_ = nullptr;
            why = "cannot connect: " + (cec ? cec.message() : std::string("stopping"));
            co_return nullptr;
        }
        boost::system::error_code nec;
        tcp_layer.socket().set_option(tcp::no_delay(true), nec);
        if constexpr (is_tls<WS>) {
            // TLS client checklist (STYLE habit 5): SNI for names, peer verification against
            // PEER_CA_FILE or the system store, and the URL's host checked against the SAN.
            auto* native = ws.next_layer().native_handle();
            boost::system::error_code ipec;
            net::ip::make_address(url_.host, ipec);
            if (ipec && !SSL_set_tlsext_host_name(native, url_.host.c_str())) {
                connecting_ = nullptr;
                why = "TLS: cannot set SNI";
                co_return nullptr;
            }
            ws.next_layer().set_verify_mode(ssl::verify_peer);
            ws.next_layer().set_verify_callback(ssl::host_name_verification(url_.host));
            auto [tec] = co_await ws.next_layer().async_handshake(
                ssl::stream_base::client, net::as_tuple(net::use_awaitable));
            if (tec) {
                connecting_ = nullptr;
                why = "TLS handshake failed: " + tls_error_text(tec, native);
                co_return nullptr;
            }
        }
        tcp_layer.expires_never();
        configure(ws, hub_->cfg().max_message_bytes);
        auto [hec] = co_await ws.async_handshake(host_header, url_.target,
                                                 net::as_tuple(net::use_awaitable));
        connecting_ = nullptr;
        if (hec) {
            why = "WebSocket handshake failed: " + hec.message();
            co_return nullptr;
        }
        co_return std::make_shared<peer_session<WS>>(std::move(ws), hub_, true, url_.text);
    }

    template <class WS> WS make_stream() {
        if constexpr (is_tls<WS>)
            return WS(strand_, tls_);
        else
            return WS(strand_);
    }

    net::strand<net::io_context::executor_type> strand_;
    net::steady_timer timer_;
    std::shared_ptr<hub> hub_;
    conf::peer_url url_;
    ssl::context& tls_;
    beast::tcp_stream* connecting_ = nullptr;
    bool stopping_ = false;
    std::atomic<bool> finished_{false};
};

struct gossip::impl : std::enable_shared_from_this<gossip::impl> {
    impl(net::io_context& ioc, outbox::store& store, const conf::config& cfg)
        : ioc_(ioc), cfg_(cfg), hub_(std::make_shared<hub>(store, cfg)), acceptor_(ioc),
          stop_timer_(ioc) {
        pm(); // register the peer series now, so /metrics lists them (at 0) before any session
    }

    void start() {
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
        client_tls_ = std::make_unique<ssl::context>(make_client_tls(cfg_));
        log::info("peer.listening", {{"address", cfg_.terminal_bind},
                                     {"port", std::to_string(port_)},
                                     {"scheme", server_tls_ ? "wss" : "ws"}});
        net::co_spawn(acceptor_.get_executor(), accept_loop(), net::detached);
        for (const auto& u : cfg_.peers) {
            auto link = std::make_shared<peer_link>(ioc_, hub_, u, *client_tls_);
            links_.push_back(link);
            link->start();
        }
    }

    net::awaitable<void> accept_loop() {
        auto self = shared_from_this();
        for (;;) {
            auto strand = net::make_strand(ioc_);
            auto [ec, sock] =
                co_await acceptor_.async_accept(strand, net::as_tuple(net::use_awaitable));
            if (ec) {
                if (ec == net::error::operation_aborted || !acceptor_.is_open())
                    co_return;
                log::warn("peer.accept_failed", {{"error", ec.message()}});
                continue;
            }
            tcp::socket s(std::move(sock));
            // Small frames (acks) must not wait for Nagle + delayed ACK (~40 ms on Linux).
            boost::system::error_code nec;
            s.set_option(tcp::no_delay(true), nec);
            auto exec = s.get_executor();
            net::co_spawn(exec, serve(std::move(s)), net::detached);
        }
    }

    /// One accepted connection: TLS handshake when the listener serves wss://, then the
    /// HTTP upgrade on /v1/peer, then the session.
    net::awaitable<void> serve(tcp::socket sock) {
        auto self = shared_from_this();
        std::string remote;
        {
            boost::system::error_code rec;
            auto ep = sock.remote_endpoint(rec);
            if (!rec)
                remote = ep.address().to_string() + ":" + std::to_string(ep.port());
        }
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
            log::debug("peer.tls_failed", {{"remote", remote}, {"error", tec.message()}});
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
            log::debug("peer.upgrade_failed", {{"remote", remote}, {"error", rec.message()}});
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
            log::debug("peer.upgrade_failed", {{"remote", remote}, {"error", aec.message()}});
            co_return;
        }
        auto session = std::make_shared<peer_session<WS>>(std::move(ws), hub_, false, "");
        co_await session->run();
    }

    void stop(std::function<void()> done) {
        net::post(acceptor_.get_executor(), [self = shared_from_this(),
                                             done = std::move(done)]() mutable {
            boost::system::error_code ec;
            self->acceptor_.close(ec);
            for (auto& l : self->links_)
                l->stop();
            self->hub_->close_all(1001, "lane shutting down");
            self->stop_deadline_ = std::chrono::steady_clock::now() + tuning::shutdown_grace;
            self->wait_stopped(std::move(done));
        });
    }

    /// Checks every 20 ms until sessions and links are gone or the grace period ran out.
    void wait_stopped(std::function<void()> done) {
        bool links_done =
            std::all_of(links_.begin(), links_.end(), [](const auto& l) { return l->finished(); });
        if ((links_done && hub_->session_count() == 0) ||
            std::chrono::steady_clock::now() >= stop_deadline_) {
            done();
            return;
        }
        stop_timer_.expires_after(std::chrono::milliseconds(20));
        stop_timer_.async_wait(
            [self = shared_from_this(), done = std::move(done)](boost::system::error_code) mutable {
                self->wait_stopped(std::move(done));
            });
    }

    net::io_context& ioc_;
    const conf::config& cfg_;
    std::shared_ptr<hub> hub_;
    tcp::acceptor acceptor_;
    net::steady_timer stop_timer_;
    std::chrono::steady_clock::time_point stop_deadline_;
    std::vector<std::shared_ptr<peer_link>> links_;
    std::unique_ptr<ssl::context> server_tls_; ///< set when the listener serves wss://
    std::unique_ptr<ssl::context> client_tls_; ///< for outgoing wss:// links
    std::uint16_t port_ = 0;
};

gossip::gossip(boost::asio::io_context& ioc, outbox::store& store, const conf::config& cfg)
    : impl_(std::make_shared<impl>(ioc, store, cfg)) {}

gossip::~gossip() = default;

void gossip::start() {
    impl_->start();
}
void gossip::stop(std::function<void()> done) {
    impl_->stop(std::move(done));
}
void gossip::notify() {
    impl_->hub_->wake_all();
}
void gossip::set_peer_ack_listener(std::function<void()> fn) {
    impl_->hub_->on_promoted = std::move(fn);
}
std::uint16_t gossip::port() const {
    return impl_->port_;
}
std::vector<peer_status> gossip::status() const {
    return impl_->hub_->status();
}

} // namespace lanesync::lanes
