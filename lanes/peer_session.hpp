#pragma once
/// Private to lanes/: one authenticated WebSocket connection to a peer lane, either role.
/// Included only by gossip.cpp (Beast is heavy).
///
/// Life of a session (docs/protocol.md):
///   client: hello -> (challenge) -> auth -> (ready) -> ready, then batches/acks both ways
///   server: (hello) -> challenge -> (auth) -> ready, then batches/acks both ways
/// Thread contract: everything runs on the stream's strand; other components only post.
/// Exactly one async_write is in flight (write queue); the close frame goes through the same
/// queue so it never overlaps a write.

#include "base/log.hpp"
#include "base/metrics.hpp"
#include "base/tuning.hpp"
#include "lanes/hub.hpp"
#include "protocol/frames.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <deque>
#include <memory>
#include <string>

namespace lanesync::lanes {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

/// Errors that are the normal end of a connection, not worth a warning.
inline bool is_expected_end(const boost::system::error_code& ec) {
    return ec == net::error::operation_aborted         // we cancelled (shutdown, timeout)
           || ec == websocket::error::closed           // the peer sent a close frame
           || ec == net::error::eof                    // the peer closed TCP
           || ec == net::error::connection_reset       // kill -9 of the peer
           || ec == beast::error::timeout              // idle peer: reported as "timeout"
           || ec == net::ssl::error::stream_truncated; // TLS peer closed without close_notify
}

struct peer_metrics {
    metrics::counter& frames_in = metrics::global().get_counter(
        "lanesync_peer_frames_total", "Peer protocol frames", "direction=\"in\"");
    metrics::counter& frames_out = metrics::global().get_counter(
        "lanesync_peer_frames_total", "Peer protocol frames", "direction=\"out\"");
    metrics::counter& malformed = metrics::global().get_counter(
        "lanesync_peer_malformed_frames_total", "Peer frames refused as malformed");
    metrics::counter& auth_failures = metrics::global().get_counter(
        "lanesync_peer_auth_failures_total", "Peer connections refused during authentication");
    metrics::counter& replicas_stored = metrics::global().get_counter(
        "lanesync_replicas_stored_total", "Copies of other lanes' messages stored");
};

inline peer_metrics& pm() {
    static peer_metrics m;
    return m;
}

template <class WS>
class peer_session : public session_handle, public std::enable_shared_from_this<peer_session<WS>> {
public:
    peer_session(WS ws, std::shared_ptr<hub> h, bool outbound, std::string url)
        : ws_(std::move(ws)), hub_(std::move(h)), outbound_(outbound), url_(std::move(url)),
          me_(hub_->cfg().terminal_id) {
        limits_.max_messages = tuning::peer_batch_max_messages;
        limits_.max_message_bytes = hub_->cfg().max_message_bytes;
    }

    bool authenticated() const { return authenticated_; }
    const std::string& peer_id() const { return peer_id_; }

    /// Runs the session to its end; returns why it ended (for logs and status).
    net::awaitable<std::string> run() {
        auto self = this->shared_from_this();
        net::steady_timer auth_deadline(ws_.get_executor());
        auth_deadline.expires_after(tuning::peer_handshake_timeout);
        std::weak_ptr<peer_session> weak = self;
        auth_deadline.async_wait([weak](boost::system::error_code ec) {
            if (ec)
                return;
            if (auto s = weak.lock(); s && !s->authenticated_) {
                s->end_reason_ = "authentication timed out";
                beast::get_lowest_layer(s->ws_).cancel();
            }
        });

        // GCC 12 mishandles temporaries with destructors inside co_await expressions
        // (conditions, ternaries, argument lists): every co_await here stands alone in a
        // statement and takes named locals.
        std::string refused;
        if (outbound_)
            refused = co_await authenticate_as_client();
        else
            refused = co_await authenticate_as_server();
        auth_deadline.cancel();
        if (!refused.empty()) {
            if (end_reason_.empty())
                end_reason_ = refused;
            // Our own refusals were logged by refuse(); log the ones the other side decided
            // (e.g. it found our PEER_SECRET wrong) and connections that died mid-handshake.
            if (!refusal_logged_)
                log::warn("peer.handshake_failed",
                          {{"peer", peer_id_.empty() ? std::string("?") : peer_id_},
                           {"direction", outbound_ ? "outbound" : "inbound"},
                           {"url", url_},
                           {"reason", end_reason_}});
            co_await drain_until_closed();
            co_return end_reason_;
        }

        co_await read_loop();
        hub_->leave(this, end_reason_);
        log::info("peer.disconnected", {{"peer", peer_id_},
                                        {"direction", outbound_ ? "outbound" : "inbound"},
                                        {"reason", end_reason_}});
        co_return end_reason_;
    }

    // ---- session_handle (thread-safe: post to the strand) ---------------------------------

    void wake() override {
        net::post(ws_.get_executor(), [self = this->shared_from_this()] { self->pump(); });
    }

    void set_sender(bool on) override {
        net::post(ws_.get_executor(), [self = this->shared_from_this(), on] {
            self->sender_ = on;
            self->pump();
        });
    }

    void close(std::uint16_t code, std::string reason) override {
        net::post(ws_.get_executor(),
                  [self = this->shared_from_this(), code, r = std::move(reason)]() mutable {
                      self->request_close(code, std::move(r));
                  });
    }

private:
    using frame = protocol::frame;

    // ---- authentication -------------------------------------------------------------------

    /// Reads one frame during authentication; nullopt after closing the link for a bad one.
    net::awaitable<std::optional<frame>> read_frame() {
        auto [ec, n] = co_await ws_.async_read(buffer_, net::as_tuple(net::use_awaitable));
        (void)n;
        if (ec) {
            end_reason_ = end_reason_.empty() ? describe_end(ec) : end_reason_;
            co_return std::nullopt;
        }
        pm().frames_in.inc();
        auto text = beast::buffers_to_string(buffer_.data());
        buffer_.consume(buffer_.size());
        if (!ws_.got_text()) {
            refuse_malformed(1008, "binary frames are not part of the protocol");
            co_return std::nullopt;
        }
        auto r = protocol::decode_frame(text, limits_);
        if (auto* bad = std::get_if<protocol::decode_error>(&r)) {
            refuse_malformed(bad->close_code, bad->reason);
            co_return std::nullopt;
        }
        co_return std::get<frame>(std::move(r));
    }

    net::awaitable<bool> write_now(const std::string& text) {
        ws_.text(true);
        auto [ec, n] =
            co_await ws_.async_write(net::buffer(text), net::as_tuple(net::use_awaitable));
        (void)n;
        if (ec) {
            end_reason_ = describe_end(ec);
            co_return false;
        }
        pm().frames_out.inc();
        co_return true;
    }

    /// Checks a peer's identity claims; returns the refusal reason or empty.
    std::string check_identity(int version, const std::string& store, const std::string& terminal) {
        const auto& cfg = hub_->cfg();
        if (version != tuning::peer_protocol_version)
            return "unsupported protocol version " + std::to_string(version) +
                   " (this lane speaks " + std::to_string(tuning::peer_protocol_version) + ")";
        if (store != cfg.store_id)
            return "store mismatch: peer is in store " + store + ", this lane in " + cfg.store_id;
        if (terminal == cfg.terminal_id)
            return "duplicate terminal id: " + terminal + " is this lane's own id";
        return {};
    }

    net::awaitable<std::string> authenticate_as_client() {
        const auto& cfg = hub_->cfg();
        std::string nonce_c = protocol::random_hex(tuning::peer_nonce_bytes);
        const std::string hello = protocol::encode(
            protocol::hello_frame{tuning::peer_protocol_version, cfg.store_id, me_, nonce_c});
        bool sent = co_await write_now(hello);
        if (!sent)
            co_return end_reason_;
        auto f = co_await read_frame();
        if (!f)
            co_return end_reason_;
        auto* ch = std::get_if<protocol::challenge_frame>(&*f);
        if (!ch)
            co_return refuse(1008, "expected a challenge frame");
        if (auto why = check_identity(ch->version, ch->store, ch->terminal); !why.empty())
            co_return refuse(1008, why);
        auto expect = protocol::peer_mac(cfg.peer_secret, protocol::peer_role::server, cfg.store_id,
                                         me_, ch->terminal, nonce_c, ch->nonce);
        if (!protocol::mac_equal(expect, ch->mac)) {
            pm().auth_failures.inc();
            co_return refuse(1008, "authentication failed: peer does not know PEER_SECRET");
        }
        peer_id_ = ch->terminal;
        auto mac = protocol::peer_mac(cfg.peer_secret, protocol::peer_role::client, cfg.store_id,
                                      me_, peer_id_, nonce_c, ch->nonce);
        const std::string auth = protocol::encode(protocol::auth_frame{mac});
        sent = co_await write_now(auth);
        if (!sent)
            co_return end_reason_;
        // The server answers with ready once it accepted us, or closes with a reason.
        auto r = co_await read_frame();
        if (!r)
            co_return end_reason_;
        auto* ready = std::get_if<protocol::ready_frame>(&*r);
        if (!ready)
            co_return refuse(1008, "expected a ready frame");
        if (auto why = join(); !why.empty())
            co_return why;
        on_ready(*ready);
        co_return std::string{};
    }

    net::awaitable<std::string> authenticate_as_server() {
        const auto& cfg = hub_->cfg();
        auto f = co_await read_frame();
        if (!f)
            co_return end_reason_;
        auto* hello = std::get_if<protocol::hello_frame>(&*f);
        if (!hello)
            co_return refuse(1008, "expected a hello frame");
        if (auto why = check_identity(hello->version, hello->store, hello->terminal);
            !why.empty()) {
            pm().auth_failures.inc();
            co_return refuse(1008, why);
        }
        std::string nonce_s = protocol::random_hex(tuning::peer_nonce_bytes);
        auto mac_s = protocol::peer_mac(cfg.peer_secret, protocol::peer_role::server, cfg.store_id,
                                        hello->terminal, me_, hello->nonce, nonce_s);
        const std::string challenge = protocol::encode(protocol::challenge_frame{
            tuning::peer_protocol_version, cfg.store_id, me_, nonce_s, mac_s});
        bool sent = co_await write_now(challenge);
        if (!sent)
            co_return end_reason_;
        auto a = co_await read_frame();
        if (!a)
            co_return end_reason_;
        auto* auth = std::get_if<protocol::auth_frame>(&*a);
        if (!auth)
            co_return refuse(1008, "expected an auth frame");
        auto expect = protocol::peer_mac(cfg.peer_secret, protocol::peer_role::client, cfg.store_id,
                                         hello->terminal, me_, hello->nonce, nonce_s);
        if (!protocol::mac_equal(expect, auth->mac)) {
            pm().auth_failures.inc();
            log::warn("peer.auth_failed",
                      {{"peer", hello->terminal}, {"reason", "wrong PEER_SECRET"}});
            co_return refuse(1008, "authentication failed");
        }
        peer_id_ = hello->terminal;
        if (auto why = join(); !why.empty())
            co_return why;
        co_return std::string{};
    }

    /// Registers with the hub and sends our ready frame.
    std::string join() {
        auto why = hub_->join(this->shared_from_this(), peer_id_, outbound_, url_);
        if (!why.empty()) {
            pm().auth_failures.inc();
            return refuse(1008, why);
        }
        authenticated_ = true;
        log::info(
            "peer.connected",
            {{"peer", peer_id_}, {"direction", outbound_ ? "outbound" : "inbound"}, {"url", url_}});
        enqueue(protocol::encode(protocol::ready_frame{hub_->store().hwm()}));
        return {};
    }

    std::string refuse(std::uint16_t code, std::string why) {
        refusal_logged_ = true;
        log::warn("peer.refused", {{"peer", peer_id_.empty() ? std::string("?") : peer_id_},
                                   {"code", std::to_string(code)},
                                   {"reason", why}});
        end_reason_ = why;
        request_close(code, why);
        return why;
    }

    void refuse_malformed(std::uint16_t code, std::string why) {
        pm().malformed.inc();
        refuse(code, "malformed frame: " + why);
    }

    // ---- data phase -------------------------------------------------------------------------

    net::awaitable<void> read_loop() {
        for (;;) {
            auto f = co_await read_frame();
            if (!f)
                co_return;
            std::visit([this](auto& fr) { on_frame(fr); }, *f);
            if (close_requested_) {
                co_await drain_until_closed();
                co_return;
            }
        }
    }

    /// After we sent (or queued) a close frame: keep reading until the peer's close arrives or
    /// the close handshake times out, so the close completes cleanly.
    net::awaitable<void> drain_until_closed() {
        for (;;) {
            auto [ec, n] = co_await ws_.async_read(buffer_, net::as_tuple(net::use_awaitable));
            (void)n;
            buffer_.consume(buffer_.size());
            if (ec)
                co_return;
        }
    }

    void on_frame(protocol::hello_frame&) { refuse_malformed(1008, "unexpected hello"); }
    void on_frame(protocol::challenge_frame&) { refuse_malformed(1008, "unexpected challenge"); }
    void on_frame(protocol::auth_frame&) { refuse_malformed(1008, "unexpected auth"); }

    void on_frame(protocol::ready_frame& f) {
        if (got_ready_)
            return refuse_malformed(1008, "second ready frame");
        on_ready(f);
    }

    void on_ready(const protocol::ready_frame& f) {
        got_ready_ = true;
        cursor_ = f.hwm;
        cursor_.erase(peer_id_); // never send a lane its own messages
        auto it = f.hwm.find(me_);
        std::uint64_t peer_holds = it == f.hwm.end() ? 0 : it->second;
        // A peer holding more of our own messages than we do means our outbox was lost or
        // replaced (e.g. a wiped disk): our new seqs would collide with the ones it holds, and
        // its acks would promote messages it never saw. Refuse loudly instead.
        auto own = hub_->store().hwm();
        auto mine = own.find(me_);
        std::uint64_t we_hold = mine == own.end() ? 0 : mine->second;
        if (peer_holds > we_hold) {
            log::error("peer.outbox_behind_peer", {{"peer", peer_id_},
                                                   {"peer_holds_seq", std::to_string(peer_holds)},
                                                   {"local_seq", std::to_string(we_hold)}});
            refuse(1008, "peer holds seq " + std::to_string(peer_holds) + " of " + me_ +
                             " but this lane only " + std::to_string(we_hold) +
                             ": outbox lost or replaced");
            return;
        }
        hub_->on_peer_ack(peer_id_, peer_holds);
        pump();
    }

    void on_frame(protocol::batch_frame& f) {
        if (f.n != next_batch_in_)
            return refuse_malformed(1008, "batch " + std::to_string(f.n) + " out of order");
        ++next_batch_in_;
        if (++commits_pending_ > tuning::peer_inflight_batches)
            return refuse_malformed(1008, "in-flight window exceeded");
        hub_->add_batch_stats(peer_id_, false);
        auto n = f.n;
        std::weak_ptr<peer_session> weak = this->shared_from_this();
        auto exec = ws_.get_executor();
        hub_->store().store_replicas(std::move(f.messages), std::move(f.floor),
                                     [weak, exec, n](outbox::replicas_outcome o) {
                                         // Runs on the outbox writer thread: hop back to the
                                         // session strand.
                                         net::post(exec, [weak, n, o = std::move(o)]() mutable {
                                             if (auto s = weak.lock())
                                                 s->on_stored(n, std::move(o));
                                         });
                                     });
    }

    void on_stored(std::uint64_t n, outbox::replicas_outcome o) {
        --commits_pending_;
        if (close_requested_)
            return;
        if (!o.ok) {
            if (!o.conflict.empty()) {
                // Not a malformed frame: the same message id was accepted on two lanes. The
                // lanes cannot both hold it under this schema, so replication of that origin
                // stops here until an operator resolves it (docs/protocol.md).
                log::error("peer.id_conflict", {{"peer", peer_id_}, {"conflict", o.conflict}});
                return request_close(1008, "id conflict: " + o.conflict);
            }
            if (o.gap)
                return refuse_malformed(1008, "batch leaves a gap: " + o.error);
            log::error("peer.store_failed", {{"peer", peer_id_}, {"error", o.error}});
            return request_close(1011, "storage failure on receiver");
        }
        if (o.inserted)
            pm().replicas_stored.inc(o.inserted);
        enqueue(protocol::encode(protocol::ack_frame{n, std::move(o.hwm)}));
    }

    void on_frame(protocol::ack_frame& f) {
        if (f.n != next_ack_in_ || inflight_ == 0)
            return refuse_malformed(1008, "ack " + std::to_string(f.n) + " does not match a batch");
        ++next_ack_in_;
        --inflight_;
        for (const auto& [origin, seq] : f.hwm) {
            if (origin == peer_id_)
                continue;
            auto& c = cursor_[origin];
            c = std::max(c, seq);
        }
        auto it = f.hwm.find(me_);
        if (it != f.hwm.end())
            hub_->on_peer_ack(peer_id_, it->second);
        pump();
    }

    /// Sends what the peer lacks while the in-flight window has room.
    void pump() {
        if (!sender_ || !got_ready_ || close_requested_)
            return;
        while (inflight_ < tuning::peer_inflight_batches) {
            auto b = hub_->store().next_for_peer(peer_id_, cursor_, tuning::peer_batch_max_messages,
                                                 tuning::peer_batch_max_bytes);
            if (b.messages.empty())
                return;
            for (const auto& [origin, first] : b.floor) {
                auto& c = cursor_[origin];
                c = std::max(c, first > 0 ? first - 1 : 0);
            }
            for (const auto& m : b.messages) {
                auto& c = cursor_[m.origin];
                c = std::max(c, m.seq);
            }
            ++inflight_;
            hub_->add_batch_stats(peer_id_, true);
            enqueue(protocol::encode(protocol::batch_frame{next_batch_out_++, std::move(b.messages),
                                                           std::move(b.floor)}));
        }
    }

    // ---- write queue ------------------------------------------------------------------------

    void enqueue(std::string text) {
        if (close_requested_)
            return;
        queue_.push_back(std::move(text));
        if (!writing_)
            do_write();
    }

    void do_write() {
        if (queue_.empty()) {
            if (close_requested_ && !close_sent_)
                do_close();
            return;
        }
        writing_ = true;
        ws_.text(true);
        // Send the front frame; on_write pops it and continues with the next.
        ws_.async_write(net::buffer(queue_.front()),
                        [self = this->shared_from_this()](boost::system::error_code ec,
                                                          std::size_t) { self->on_write(ec); });
    }

    void on_write(boost::system::error_code ec) {
        writing_ = false;
        if (ec) {
            if (end_reason_.empty())
                end_reason_ = describe_end(ec);
            queue_.clear();
            beast::get_lowest_layer(ws_).cancel();
            return;
        }
        pm().frames_out.inc();
        queue_.pop_front();
        do_write();
    }

    void request_close(std::uint16_t code, std::string reason) {
        if (close_requested_)
            return;
        close_requested_ = true;
        // Close reasons are limited to 123 bytes by RFC 6455.
        if (reason.size() > 120)
            reason.resize(120);
        close_reason_ = websocket::close_reason(static_cast<websocket::close_code>(code), reason);
        if (!writing_) {
            queue_.clear();
            do_close();
        }
    }

    void do_close() {
        close_sent_ = true;
        writing_ = true;
        ws_.async_close(close_reason_, [self = this->shared_from_this()](
                                           boost::system::error_code) { self->writing_ = false; });
    }

    std::string describe_end(const boost::system::error_code& ec) {
        if (ec == websocket::error::closed) {
            auto r = ws_.reason();
            std::string s = "closed by peer (" + std::to_string(r.code) + ")";
            if (!r.reason.empty())
                s += ": " + std::string(r.reason.data(), r.reason.size());
            return s;
        }
        if (ec == beast::error::timeout)
            return "peer timed out (no heartbeat)";
        return ec.message();
    }

    WS ws_;
    std::shared_ptr<hub> hub_;
    bool outbound_;
    std::string url_;
    std::string me_;
    std::string peer_id_;
    protocol::frame_limits limits_;
    beast::flat_buffer buffer_;

    bool authenticated_ = false;
    bool refusal_logged_ = false;
    bool got_ready_ = false;
    bool sender_ = false;
    std::string end_reason_;

    // sender side
    protocol::hwm_map cursor_; ///< per origin: highest seq the peer has or is in flight
    std::size_t inflight_ = 0; ///< batches sent, not yet acked
    std::uint64_t next_batch_out_ = 1;
    std::uint64_t next_ack_in_ = 1;

    // receiver side
    std::uint64_t next_batch_in_ = 1;
    std::size_t commits_pending_ = 0;

    // writes
    std::deque<std::string> queue_;
    bool writing_ = false;
    bool close_requested_ = false;
    bool close_sent_ = false;
    websocket::close_reason close_reason_;
};

} // namespace lanesync::lanes
