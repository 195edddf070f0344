#include "lanes/gossip.hpp"

#include "base/log.hpp"
#include "base/tls.hpp"
#include "base/tuning.hpp"
#include "lanes/hub.hpp"
#include "lanes/listener.hpp"
#include "lanes/peer_link.hpp"
#include "lanes/peer_session.hpp"
#include "protocol/close_code.hpp"
#include "protocol/message.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>

namespace lanesync::lanes {

namespace net = boost::asio;

/// The composition: one hub, one listener, one supervised link per PEER_TERMINALS URL.
struct gossip::impl : std::enable_shared_from_this<gossip::impl> {
    impl(net::io_context& ioc, outbox::store& store, const conf::config& cfg)
        : ioc_(ioc), cfg_(cfg), hub_(std::make_shared<hub>(ioc.get_executor(), store, cfg)),
          listener_(make_listener(ioc, hub_, cfg)), stop_timer_(ioc), check_timer_(ioc),
          tick_timer_(ioc), catalog_timer_(ioc) {
        register_peer_metrics(); // so /metrics lists them (at 0) before any session
    }

    /// Thread-safe: a catalog change; the haves go out once, debounced.
    void catalog_changed() {
        net::post(ioc_, [self = shared_from_this()] {
            if (self->stopping_ || self->catalog_due_)
                return;
            self->catalog_due_ = true;
            self->catalog_timer_.expires_after(tuning::peer_catalog_have_debounce);
            self->catalog_timer_.async_wait([self](boost::system::error_code ec) {
                self->catalog_due_ = false;
                if (ec || self->stopping_)
                    return;
                self->last_have_ = std::chrono::steady_clock::now();
                self->hub_->catalog_have_all();
            });
        });
    }

    void start() {
        // A peer's page applied by one session: every session announces (debounced).
        hub_->on_catalog_changed([weak = weak_from_this()] {
            if (auto self = weak.lock())
                self->catalog_changed();
        });
        listener_->start();
        start_rebuild();
        // Peer links trust PEER_CA_FILE alone when it is set, else the system store.
        tls::trust_roots roots;
        roots.system_store = cfg_.peer_ca_file.empty();
        if (!cfg_.peer_ca_file.empty())
            roots.ca_files.push_back(cfg_.peer_ca_file);
        client_tls_ = tls::make_client_context(roots);
        for (const auto& u : cfg_.peers) {
            auto link = make_peer_link(ioc_, hub_, u, *client_tls_);
            links_.push_back(link);
            link->start();
        }
        schedule_tick();
    }

    /// The persisted rebuild state (read once, before the io_context runs): resume a rebuild,
    /// or begin the start check (tuning::start_peer_check).
    void start_rebuild() {
        std::vector<std::string> urls;
        for (const auto& p : cfg_.peers)
            urls.push_back(p.text);
        hub_->rebuild().set_links(std::move(urls));
        auto& store = hub_->outbox().sync();
        auto st = store.get_rebuild_state();
        auto h = store.hwm();
        auto own = h.find(cfg_.terminal_id);
        hub_->rebuild().start(st, own == h.end() ? 0 : own->second, protocol::now_ms());
        if (hub_->rebuild().view().start_check) {
            check_timer_.expires_after(tuning::start_peer_check);
            check_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
                if (!ec)
                    self->hub_->rebuild().start_check_over();
            });
        }
    }

    /// Every lane_tick: liveness of the live sessions, the origins this lane covers, and news
    /// to every peer when something changed or peer_news_interval passed.
    void schedule_tick() {
        tick_timer_.expires_after(tuning::lane_tick);
        tick_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (ec || self->stopping_)
                return;
            self->hub_->outbox().origin_summaries(
                [self](std::vector<outbox::origin_summary> origins) {
                    self->on_tick(origins);
                    if (!self->stopping_)
                        self->schedule_tick();
                });
        });
    }

    void on_tick(const std::vector<outbox::origin_summary>& origins) {
        auto now = protocol::now_ms();
        hub_->rebuild().tick(now); // retries a commit or cloud query that failed
        auto c = hub_->cover().tick(hub_->connected_peers(), origins, now);
        for (const auto& o : c.started)
            log::warn("lane.cover_started", {{"origin", o}, {"reason", "not seen by any lane"}});
        for (const auto& o : c.stopped)
            log::info("lane.cover_stopped", {{"origin", o}});
        auto since = std::chrono::steady_clock::now() - last_news_;
        if (c.news_due || since >= tuning::peer_news_interval) {
            last_news_ = std::chrono::steady_clock::now();
            hub_->news_all();
        }
        // The catalog's haves also go out now and then: a change this lane was not told of
        // (a commit listener that does not call notify_catalog) still spreads.
        if (std::chrono::steady_clock::now() - last_have_ >= tuning::peer_catalog_have_interval) {
            last_have_ = std::chrono::steady_clock::now();
            hub_->catalog_have_all();
        }
    }

    void stop(std::function<void()> done) {
        net::post(ioc_, [self = shared_from_this(), done = std::move(done)]() mutable {
            self->stopping_ = true;
            self->check_timer_.cancel();
            self->hub_->rebuild().stopping(); // POSTs held by the start check are answered
            self->tick_timer_.cancel();
            self->catalog_timer_.cancel();
            self->listener_->close();
            for (auto& l : self->links_)
                l->stop();
            self->hub_->close_all(protocol::close_code::going_away, "lane shutting down");
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
    std::shared_ptr<listener> listener_;
    net::steady_timer stop_timer_;
    net::steady_timer check_timer_;   ///< the start check's deadline
    net::steady_timer tick_timer_;    ///< lane_tick
    net::steady_timer catalog_timer_; ///< peer_catalog_have_debounce
    bool catalog_due_ = false;        ///< io thread only: the debounce timer runs
    std::chrono::steady_clock::time_point last_news_{};
    std::chrono::steady_clock::time_point last_have_{};
    bool stopping_ = false; ///< io thread only
    std::chrono::steady_clock::time_point stop_deadline_;
    std::vector<std::shared_ptr<peer_link>> links_;
    std::unique_ptr<net::ssl::context> client_tls_; ///< for outgoing wss:// links
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
void gossip::notify_catalog() {
    impl_->catalog_changed();
}
std::uint16_t gossip::port() const {
    return impl_->listener_->port();
}
std::vector<peer_status> gossip::status() const {
    return impl_->hub_->status();
}
void gossip::admit(std::function<void(std::optional<rebuild_view>)> done) {
    impl_->hub_->rebuild().admit(std::move(done));
}
rebuild_view gossip::rebuild() const {
    return impl_->hub_->rebuild().view();
}
exclude_result gossip::rebuild_without(const std::vector<std::string>& without) {
    return impl_->hub_->rebuild().exclude(without);
}

void gossip::set_cloud_seq(
    std::function<void(std::function<void(std::string, std::uint64_t)>)> ask) {
    // The controller lives in the hub: keep the hub alive until the answer was handled.
    impl_->hub_->rebuild().set_cloud(
        [ask = std::move(ask), weak = std::weak_ptr<hub>(impl_->hub_)](auto done) {
            ask([weak, done = std::move(done)](std::string error, std::uint64_t seq) mutable {
                if (auto h = weak.lock())
                    done(std::move(error), seq);
            });
        });
}

std::vector<std::string> gossip::covering() const {
    return impl_->hub_->cover().covering();
}
std::vector<origin_view> gossip::origins(const std::vector<outbox::origin_summary>& held) const {
    return impl_->hub_->cover().origins(held);
}

} // namespace lanesync::lanes
