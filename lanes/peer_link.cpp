#include "lanes/peer_link.hpp"

#include "base/backoff.hpp"
#include "base/log.hpp"
#include "base/text.hpp"
#include "base/tls.hpp"
#include "base/tuning.hpp"
#include "lanes/peer_session.hpp"
#include "lanes/streams.hpp"
#include "protocol/message.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>

namespace lanesync::lanes {
namespace {

using tcp = net::ip::tcp;
namespace ssl = net::ssl;
using std::chrono::milliseconds;

class link_impl : public peer_link, public std::enable_shared_from_this<link_impl> {
public:
    link_impl(net::io_context& ioc, std::shared_ptr<hub> h, conf::peer_url url, ssl::context& tls)
        : strand_(net::make_strand(ioc)), timer_(strand_), hub_(std::move(h)), url_(std::move(url)),
          tls_(tls) {}

    void start() override {
        std::weak_ptr<link_impl> weak = shared_from_this();
        hub_->watch_link(url_.text, [weak] {
            if (auto self = weak.lock())
                self->wake();
        });
        net::co_spawn(strand_, run(), [self = shared_from_this()](std::exception_ptr e) {
            if (e)
                log::error("peer.link_crashed",
                           {{"url", self->url_.text}, {"error", text::what(e)}});
            self->finished_ = true;
        });
    }

    void stop() override {
        net::post(strand_, [self = shared_from_this()] {
            self->stopping_ = true;
            self->timer_.cancel();
            if (self->connecting_)
                self->connecting_->cancel();
        });
    }

    bool finished() const override { return finished_; }

private:
    /// An inbound session from this link's peer works: stop waiting, start over from the first
    /// delay. Thread-safe.
    void wake() {
        net::post(strand_, [self = shared_from_this()] {
            if (!self->waiting_)
                return;
            self->woken_ = true;
            self->timer_.cancel();
        });
    }

    net::awaitable<void> run() {
        std::uint32_t attempt = 0;
        while (!stopping_) {
            auto began = std::chrono::steady_clock::now();
            session_result r;
            if (url_.tls)
                r = co_await attempt_once<ws_tls>();
            else
                r = co_await attempt_once<ws_plain>();
            if (stopping_)
                break;
            // Any ending answers the start check (a peer's ready was noted by the session).
            hub_->rebuild().link_answered(url_.text);
            const protocol::version_offer offer{
                version_, {tuning::peer_protocol_min_version, tuning::peer_protocol_version}};
            auto e = protocol::classify_ending(r.stage, r.close_code, r.close_reason, r.who, offer);
            if (rebuild_switch(r)) {
                // The lane (or the peer) started or finished a rebuild: again at once, in the
                // new mode (classify_ending says so with the offered version). At once a few
                // times in a row only, so nothing can make a hot loop.
                if (++switches_ <= max_switches_in_a_row)
                    continue;
                e.retry_version = 0;
            } else {
                switches_ = 0;
            }
            if (e.retry_version > 0) {
                // The peer speaks an older version we also speak: again at once with that one,
                // and keep it for this link (docs/protocol.md "Versions"). At once only once in
                // a row, so a peer that keeps changing its mind cannot make a hot loop.
                log::info("peer.version_fallback", {{"url", url_.text},
                                                    {"from", std::to_string(version_)},
                                                    {"to", std::to_string(e.retry_version)}});
                version_ = e.retry_version;
                if (!std::exchange(fell_back_, true))
                    continue;
            } else {
                fell_back_ = false;
            }
            // Start over from the shortest delay only after a session that lived a while: one
            // that is refused right after authenticating (e.g. an id conflict) must back off
            // like a failed connect instead of reconnecting in a hot loop.
            bool lasted = std::chrono::steady_clock::now() - began >= tuning::peer_session_proven;
            attempt = r.authenticated() && lasted ? 0 : attempt + 1;
            co_await wait(attempt, r, e);
            if (std::exchange(woken_, false))
                attempt = 0;
        }
    }

    /// A session closed because a rebuild started or finished (docs/protocol.md "Endings").
    static bool rebuild_switch(const session_result& r) {
        std::string_view why = r.close_reason;
        return r.who != protocol::decided_by::transport &&
               (why.starts_with("rebuilding:") || why.starts_with("rebuild finished"));
    }
    static constexpr int max_switches_in_a_row = 3;

    /// The backoff after one ending: short full jitter when transient, the long cap when
    /// permanent (SPEC section 7; docs/protocol.md "Reconnects").
    net::awaitable<void> wait(std::uint32_t attempt, const session_result& r,
                              const protocol::ending& e) {
        auto cap = e.permanent() ? tuning::peer_reconnect_permanent : tuning::peer_reconnect_max;
        auto delay = backoff::full_jitter(
            std::chrono::duration_cast<milliseconds>(tuning::peer_reconnect_base),
            std::chrono::duration_cast<milliseconds>(cap), attempt);
        hub_->link_state(url_.text, hub::link_ending{r.reason, protocol::now_ms() + delay.count(),
                                                     e.permanent(), e.text, r.claimed_id});
        if (e.permanent())
            log::warn("peer.link_failed_permanently", {{"url", url_.text},
                                                       {"failure", e.text},
                                                       {"in_ms", std::to_string(delay.count())},
                                                       {"reason", r.reason}});
        else
            log::debug("peer.reconnect_scheduled", {{"url", url_.text},
                                                    {"in_ms", std::to_string(delay.count())},
                                                    {"reason", r.reason}});
        waiting_ = true;
        timer_.expires_after(delay);
        co_await timer_.async_wait(net::as_tuple(net::use_awaitable));
        waiting_ = false;
    }

    /// One connect and, when it works, one session.
    template <class WS> net::awaitable<session_result> attempt_once() {
        session_result r;
        r.stage = protocol::session_stage::connecting;
        WS ws = make_stream<WS>();
        bool up = co_await connect(ws, r.reason);
        if (!up)
            co_return r;
        auto session = run_session<WS>(std::move(ws), hub_, true, url_.text, version_);
        r = co_await std::move(session);
        co_return r;
    }

    /// TCP connect (+ TLS handshake for wss://) + WebSocket handshake; false (with `why`) on
    /// failure.
    template <class WS> net::awaitable<bool> connect(WS& ws, std::string& why) {
        tcp::resolver resolver(strand_);
        const std::string port = std::to_string(url_.port);
        const std::string host_header = url_.host + ":" + port;
        auto [rec, results] =
            co_await resolver.async_resolve(url_.host, port, net::as_tuple(net::use_awaitable));
        if (rec) {
            why = "cannot resolve " + url_.host + ": " + rec.message();
            co_return false;
        }
        auto& tcp_layer = beast::get_lowest_layer(ws);
        connecting_ = &tcp_layer;
        tcp_layer.expires_after(tuning::peer_handshake_timeout);
        auto [cec, ep] =
            co_await tcp_layer.async_connect(results, net::as_tuple(net::use_awaitable));
        (void)ep;
        if (cec || stopping_) {
            connecting_ = nullptr;
            why = "cannot connect: " + (cec ? cec.message() : std::string("stopping"));
            co_return false;
        }
        boost::system::error_code nec;
        tcp_layer.socket().set_option(tcp::no_delay(true), nec);
        if constexpr (is_tls<WS>) {
            // TLS client checklist (STYLE habit 5, base/tls.hpp): SNI for names, peer
            // verification against the context's trust roots, the URL's host checked by OpenSSL.
            auto* native = ws.next_layer().native_handle();
            std::string tls_why;
            if (!tls::prepare_client(native, url_.host, tls_why)) {
                connecting_ = nullptr;
                why = "TLS: " + tls_why;
                co_return false;
            }
            auto [tec] = co_await ws.next_layer().async_handshake(
                ssl::stream_base::client, net::as_tuple(net::use_awaitable));
            if (tec) {
                connecting_ = nullptr;
                why = "TLS handshake failed: " + tls::handshake_error_text(tec, native);
                co_return false;
            }
        }
        tcp_layer.expires_never();
        configure(ws, hub_->cfg().max_message_bytes);
        auto [hec] = co_await ws.async_handshake(host_header, url_.target,
                                                 net::as_tuple(net::use_awaitable));
        connecting_ = nullptr;
        if (hec) {
            why = "WebSocket handshake failed: " + hec.message();
            co_return false;
        }
        co_return true;
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
    bool waiting_ = false;
    bool woken_ = false;
    int version_ = tuning::peer_protocol_version; ///< offered in the hello; lowered by a fallback
    bool fell_back_ = false; ///< the last attempt was an immediate version fallback
    int switches_ = 0;       ///< immediate reconnects after rebuild switches, in a row
    std::atomic<bool> finished_{false};
};

} // namespace

std::shared_ptr<peer_link> make_peer_link(net::io_context& ioc, std::shared_ptr<hub> h,
                                          conf::peer_url url, ssl::context& tls) {
    return std::make_shared<link_impl>(ioc, std::move(h), std::move(url), tls);
}

} // namespace lanesync::lanes
