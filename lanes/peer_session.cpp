#include "lanes/peer_session.hpp"

#include "base/log.hpp"
#include "base/tuning.hpp"
#include "lanes/catalog_peer.hpp"
#include "lanes/preauth.hpp"
#include "lanes/session_support.hpp"
#include "lanes/streams.hpp"
#include "protocol/message.hpp"
#include "protocol/peer_machine.hpp"
#include "protocol/rebuild.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <deque>
#include <optional>

namespace lanesync::lanes {
namespace {

using detail::pm;

template <class WS>
class peer_session : public session_handle, public std::enable_shared_from_this<peer_session<WS>> {
public:
    peer_session(WS ws, std::shared_ptr<hub> h, bool outbound, std::string url, int offer_version)
        : ws_(std::move(ws)), hub_(std::move(h)), outbound_(outbound), url_(std::move(url)),
          mode_(hub_->rebuild().mode()),
          machine_(detail::machine_config(hub_->cfg(), offer_version, mode_),
                   outbound ? protocol::peer_role::client : protocol::peer_role::server),
          auth_deadline_(ws_.get_executor()) {
        boost::system::error_code ec;
        auto ep = beast::get_lowest_layer(ws_).socket().remote_endpoint(ec);
        if (!ec)
            remote_ = ep.address().to_string() + ":" + std::to_string(ep.port());
    }

    /// Runs the session to its end.
    net::awaitable<session_result> run() {
        auto self = this->shared_from_this();
        auth_deadline_.expires_after(tuning::peer_handshake_timeout);
        std::weak_ptr<peer_session> weak = self;
        auth_deadline_.async_wait([weak](boost::system::error_code ec) {
            if (auto s = weak.lock(); s && !ec) {
                s->auth_timed_out_ = !s->machine_.authenticated();
                s->apply(s->machine_.on_auth_timeout());
            }
        });
        apply(machine_.start());
        co_await read_loop();
        auth_deadline_.cancel();
        if (peer_closed_)
            detail::on_peer_closed(*hub_, machine_.peer_id(), close_reason_text_);
        if ((too_big_ || bad_frame_) && machine_.authenticated())
            detail::note_bad_frame(machine_.peer_id(), remote_, end_reason_, too_big_);
        if (machine_.authenticated()) {
            hub_->leave(this, end_reason_);
            log::info("peer.disconnected", {{"peer", machine_.peer_id()},
                                            {"direction", direction()},
                                            {"reason", end_reason_}});
        } else if (!outbound_) {
            // Abuse of the peer port is counted by reason and logged rate-limited.
            detail::note_preauth_failure(
                detail::classify_preauth({auth_timed_out_, preauth_cause_, too_big_, bad_frame_}),
                remote_, end_reason_);
        } else if (!refusal_logged_) {
            // Our own refusals were logged as peer.refused; log the ones the other side decided
            // (e.g. it found our PEER_SECRET wrong) and connections that died mid-handshake.
            log::warn("peer.handshake_failed", {{"peer", or_unknown(machine_.peer_id())},
                                                {"direction", direction()},
                                                {"url", url_},
                                                {"reason", end_reason_}});
        }
        co_return result();
    }

    // ---- session_handle (thread-safe: posts to the strand) --------------------------------

    void wake() override {
        net::post(ws_.get_executor(),
                  [self = this->shared_from_this()] { self->apply(self->machine_.on_wake()); });
    }

    void set_sender(bool on) override {
        net::post(ws_.get_executor(), [self = this->shared_from_this(), on] {
            self->apply(self->machine_.on_sender(on));
            self->catalog_.set_sender(on);
        });
    }

    void send_catalog_have() override {
        net::post(ws_.get_executor(),
                  [self = this->shared_from_this()] { self->catalog_.announce(true); });
    }

    void send_news() override {
        net::post(ws_.get_executor(), [self = this->shared_from_this()] { self->news_now(); });
    }

    void close(std::uint16_t code, std::string reason) override {
        net::post(ws_.get_executor(),
                  [self = this->shared_from_this(), code, r = std::move(reason)]() mutable {
                      self->apply(self->machine_.on_close_request(code, std::move(r)));
                  });
    }

private:
    friend class detail::catalog_peer<peer_session>;
    static std::string or_unknown(const std::string& id) { return id.empty() ? "?" : id; }
    const session_handle* handle() const { return this; }

    void news_now() {
        if (machine_.closing())
            return;
        apply(machine_.on_news(hub_->cover().news(protocol::now_ms())));
    }

    /// The peer's ready was checked: the first news, the start check's answer, status.
    void ready_seen() {
        if (std::exchange(ready_seen_, true))
            return;
        if (outbound_)
            hub_->rebuild().link_answered(url_);
        hub_->note_incarnation(machine_.peer_id(), machine_.incarnation_of_peer());
    }
    const char* direction() const { return outbound_ ? "outbound" : "inbound"; }

    // ---- reading (one coroutine) ------------------------------------------------------------

    /// Reads frames into the machine until the connection ends; after a close of ours, keeps
    /// reading until the peer's close arrives or the close handshake times out, so the close
    /// completes cleanly.
    net::awaitable<void> read_loop() {
        for (;;) {
            auto [ec, n] = co_await ws_.async_read(buffer_, net::as_tuple(net::use_awaitable));
            (void)n;
            if (ec) {
                note_end(ec);
                co_return;
            }
            if (close_requested_) { // draining
                buffer_.consume(buffer_.size());
                continue;
            }
            pm().frames_in.inc();
            auto text = beast::buffers_to_string(buffer_.data());
            buffer_.consume(buffer_.size());
            if (ws_.got_text())
                apply(machine_.on_text(text));
            else
                apply(machine_.on_binary());
        }
    }

    void note_end(const boost::system::error_code& ec) {
        if (ec == websocket::error::message_too_big)
            too_big_ = true; // Beast sent close 1009 (docs/protocol.md "Close codes")
        else if (ec == beast::error::timeout)
            auth_timed_out_ = !machine_.authenticated(); // the idle timeout came first
        else if (ec == websocket::condition::protocol_violation)
            bad_frame_ = true; // Beast refused the frame (bad UTF-8: 1007; bad opcode: 1002)
        if (ec == websocket::error::closed && !close_requested_) {
            peer_closed_ = true;
            auto r = ws_.reason();
            close_code_ = r.code;
            close_reason_text_.assign(r.reason.data(), r.reason.size());
        }
        if (end_reason_.empty())
            end_reason_ = describe_end(ec);
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
        if (ec == websocket::error::message_too_big)
            return "frame over the size limit (closed " +
                   std::to_string(protocol::close_code::message_too_big) + ")";
        return ec.message();
    }

    session_result result() const {
        session_result r;
        r.reason = end_reason_;
        r.stage = machine_.authenticated() ? protocol::session_stage::authenticated
                                           : protocol::session_stage::authenticating;
        if (close_requested_)
            r.who = protocol::decided_by::us;
        else if (peer_closed_)
            r.who = protocol::decided_by::peer;
        r.close_code = r.who == protocol::decided_by::transport ? 0 : close_code_;
        r.close_reason = close_reason_text_;
        r.claimed_id = machine_.claimed_id();
        r.version = machine_.version();
        return r;
    }

    // ---- the machine's actions --------------------------------------------------------------

    /// Carries out actions in order; an answer that is ready at once is fed back before the
    /// next action (depth first, like the synchronous calls it replaces).
    void apply(protocol::peer_actions actions) {
        for (auto& a : actions)
            std::visit([this](auto& act) { this->on_action(act); }, a);
        if (report_ && !report_waits_check_)
            report_checked();
    }

    /// The peer's report of our origin counts only once its mark passed the id check (a mark
    /// naming other messages than ours is an incarnation mismatch, not a report).
    void report_checked() {
        report_waits_check_ = false;
        if (!report_)
            return;
        auto r = std::move(*report_);
        report_.reset();
        if (machine_.closing())
            return;
        hub_->rebuild().report(std::move(r));
        ready_seen();
    }

    void on_action(protocol::send_frame& a) {
        if (a.batch)
            hub_->add_batch_stats(machine_.peer_id(), true);
        send(std::move(a.text));
    }

    /// Completions of the outbox calls below run on this session's strand (the stream's
    /// executor); a session that ended meanwhile drops them.
    template <class F> auto on_strand(F f) {
        std::weak_ptr<peer_session> weak = this->shared_from_this();
        return net::bind_executor(ws_.get_executor(),
                                  [weak, f = std::move(f)](auto... result) mutable {
                                      if (auto s = weak.lock())
                                          f(*s, std::move(result)...);
                                  });
    }

    void on_action(protocol::store_batch& a) {
        hub_->add_batch_stats(machine_.peer_id(), false);
        auto n = a.n;
        bool restore = a.restore;
        hub_->outbox().store_replicas(
            std::move(a.messages), std::move(a.floor), restore,
            on_strand([n, restore](peer_session& s, outbox::replicas_outcome o) {
                s.on_stored(n, restore, std::move(o));
            }));
    }

    void on_stored(std::uint64_t n, bool restore, outbox::replicas_outcome o) {
        if (o.ok && !machine_.closing()) {
            if (o.restored > 0)
                pm().restored.inc(o.restored);
            if (o.inserted > o.restored)
                pm().replicas_stored.inc(o.inserted - o.restored);
        }
        if (restore && o.ok) {
            auto own = o.hwm.find(hub_->cfg().terminal_id);
            if (own != o.hwm.end())
                hub_->rebuild().own_hwm(own->second);
        }
        apply(machine_.on_stored(n, detail::to_protocol(std::move(o))));
    }

    void on_action(protocol::read_hwm& a) {
        if (!a.ids) {
            hub_->outbox().hwm(on_strand([](peer_session& s, protocol::hwm_map h) {
                s.apply(s.machine_.on_hwm(std::move(h)));
            }));
            return;
        }
        hub_->outbox().tips(on_strand([](peer_session& s, outbox::tips t) {
            s.apply(s.machine_.on_hwm(std::move(t.hwm), std::move(t.ids)));
        }));
    }

    void on_action(protocol::read_tip_ids& a) {
        auto n = a.n;
        hub_->outbox().ids_at(std::move(a.at),
                              on_strand([n](peer_session& s, protocol::tip_ids ids) {
                                  s.apply(s.machine_.on_ack_ids(n, std::move(ids)));
                              }));
    }

    void on_action(protocol::read_own_mark& a) {
        auto seq = a.seq;
        if (report_)
            report_waits_check_ = true;
        hub_->outbox().own_mark(seq, on_strand([seq](peer_session& s, outbox::own_mark m) {
                                    s.apply(s.machine_.on_own_mark(seq, m.hwm, m.id));
                                    if (s.report_waits_check_)
                                        s.report_checked();
                                }));
    }

    void on_action(protocol::read_origin_mark& a) {
        auto origin = a.origin;
        auto seq = a.seq;
        hub_->outbox().ids_at(protocol::hwm_map{{origin, seq}},
                              on_strand([origin, seq](peer_session& s, protocol::tip_ids ids) {
                                  auto it = ids.find(origin);
                                  s.apply(s.machine_.on_origin_mark(
                                      origin, seq, it == ids.end() ? std::string() : it->second));
                              }));
    }

    void on_action(protocol::own_reported& a) {
        report_ = protocol::rebuild_report{outbound_ ? url_ : std::string(), a.peer, a.seq, a.id};
    }

    void on_action(protocol::news_received& a) { detail::on_news(*hub_, a); }
    void on_action(protocol::catalog_have_received& a) { catalog_.on_peer_have(a); }
    void on_action(protocol::catalog_page_received& a) { catalog_.on_page(a); }
    void on_action(protocol::lift_trust_cap& a) { detail::lift_trust_cap(*hub_, a); }

    void on_action(protocol::read_next_batch& a) {
        hub_->outbox().next_for_peer(
            std::move(a.peer), std::move(a.after), a.limit, a.max_bytes, a.include_peer_origin,
            on_strand([](peer_session& s, outbox::store::peer_batch b) {
                s.apply(s.machine_.on_next_batch(std::move(b.messages), std::move(b.floor)));
            }));
    }

    void on_action(protocol::peer_acked& a) {
        hub_->on_peer_ack(a.peer, a.through);
        ready_seen();
        if (!outbound_ && !reachable_noted_) {
            // The peer's ready passed its checks: a link of ours to it may stop waiting.
            reachable_noted_ = true;
            hub_->peer_reachable(a.peer);
        }
    }

    void on_action(protocol::join_hub& a) {
        // A session made before the lane started or ended a rebuild is in the wrong mode: its
        // link reconnects at once in the right one.
        std::string why = hub_->rebuild().current(mode_.generation)
                              ? hub_->join(this->shared_from_this(), a.peer, outbound_, url_)
                              : std::string("rebuilding: the lane's mode changed");
        if (why.empty()) {
            // The machine keeps them until our ready went out (v2, v3), then sends them.
            news_now();
            catalog_.announce(false);
            auth_deadline_.cancel();
            log::info("peer.connected",
                      {{"peer", a.peer}, {"direction", direction()}, {"url", url_}});
        }
        apply(machine_.on_join(why));
    }

    void on_action(protocol::close_link& a) {
        const bool preauth = !outbound_ && !machine_.authenticated();
        if (preauth && a.refusal)
            preauth_cause_ = a.cause;
        detail::on_close_decided(*hub_, a, outbound_, machine_.peer_id(), machine_.claimed_id(),
                                 preauth);
        if (a.refusal) {
            refusal_logged_ = true;
            end_reason_ = a.reason;
        }
        request_close(a.code, a.reason);
    }

    void on_action(protocol::abort_link& a) {
        end_reason_ = a.reason;
        beast::get_lowest_layer(ws_).cancel();
    }

    // ---- writing (one do_write / on_write chain, bounded queue) -----------------------------

    /// Queues one frame. Returns false when the queue is full: the frame is still sent (a
    /// protocol frame is never dropped), and the machine stops reading new batches until the
    /// queue drains to half (back-pressure).
    bool send(std::string text) {
        if (close_requested_)
            return false;
        queue_.push_back(std::move(text));
        do_write();
        bool full = queue_.size() >= tuning::peer_write_queue_limit;
        if (full && !queue_full_) {
            queue_full_ = true;
            apply(machine_.on_write_queue(true));
        }
        return !full;
    }

    void do_write() {
        if (writing_)
            return;
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
        if (queue_full_ && queue_.size() <= tuning::peer_write_queue_limit / 2) {
            queue_full_ = false;
            apply(machine_.on_write_queue(false));
        }
    }

    /// The close frame goes through the same chain, after the frames already queued, so it
    /// never overlaps a write.
    void request_close(std::uint16_t code, std::string reason) {
        if (close_requested_)
            return;
        close_requested_ = true;
        close_code_ = code;
        // Close reasons are limited to 123 bytes by RFC 6455.
        if (reason.size() > 120)
            reason.resize(120);
        close_reason_text_ = reason;
        close_reason_ = websocket::close_reason(static_cast<websocket::close_code>(code), reason);
        do_write();
    }

    void do_close() {
        close_sent_ = true;
        writing_ = true;
        ws_.async_close(close_reason_, [self = this->shared_from_this()](
                                           boost::system::error_code) { self->writing_ = false; });
    }

    WS ws_;
    std::shared_ptr<hub> hub_;
    bool outbound_;
    std::string url_;
    session_mode mode_; ///< the lane's mode when the session was made
    protocol::peer_machine machine_;
    net::steady_timer auth_deadline_;
    beast::flat_buffer buffer_;

    std::string remote_; ///< address:port of the other end, for the abuse lines
    bool auth_timed_out_ = false;
    bool too_big_ = false;
    bool bad_frame_ = false;
    std::optional<protocol::close_cause> preauth_cause_; ///< an inbound refusal before auth
    bool refusal_logged_ = false;
    bool reachable_noted_ = false;
    bool ready_seen_ = false;
    std::optional<protocol::rebuild_report> report_; ///< own_reported, until its check passed
    bool report_waits_check_ = false;
    std::string end_reason_;
    bool peer_closed_ = false;
    std::uint16_t close_code_ = 0; ///< sent (close_requested_) or received (peer_closed_)
    std::string close_reason_text_;

    std::deque<std::string> queue_;
    bool queue_full_ = false;
    bool writing_ = false;
    bool close_requested_ = false;
    bool close_sent_ = false;
    websocket::close_reason close_reason_;
    detail::catalog_peer<peer_session> catalog_{*this}; ///< v3 catalog anti-entropy
};

} // namespace

template <class WS>
net::awaitable<session_result> run_session(WS ws, std::shared_ptr<hub> h, bool outbound,
                                           std::string url, int offer_version) {
    auto s = std::make_shared<peer_session<WS>>(std::move(ws), std::move(h), outbound,
                                                std::move(url), offer_version);
    auto r = co_await s->run();
    co_return r;
}

template net::awaitable<session_result> run_session<ws_plain>(ws_plain, std::shared_ptr<hub>, bool,
                                                              std::string, int);
template net::awaitable<session_result> run_session<ws_tls>(ws_tls, std::shared_ptr<hub>, bool,
                                                            std::string, int);

void register_peer_metrics() {
    pm();
    detail::register_catalog_metrics();
    detail::register_preauth_metrics();
}

} // namespace lanesync::lanes
