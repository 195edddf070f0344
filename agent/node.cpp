#include "agent/node.hpp"

#include "agent/api_server.hpp"
#include "agent/reload.hpp"
#include "agent/retention.hpp"
#include "agent/sd_notify.hpp"
#include "base/log.hpp"
#include "base/metrics.hpp"
#include "base/tuning.hpp"
#include "cloud/puller.hpp"
#include "cloud/uploader.hpp"
#include "lanes/gossip.hpp"
#include "outbox/async.hpp"
#include "outbox/outbox.hpp"
#include "protocol/message.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <sys/statvfs.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

namespace lanesync::agent {
namespace {

namespace net = boost::asio;

/// How often the agent looks for commits made by another process (the CLI's publish/retry).
constexpr auto external_change_poll = std::chrono::milliseconds(250);
/// How often the one-line STATUS= goes to the service manager (only under systemd).
constexpr auto notify_status_interval = std::chrono::seconds(5);

/// Everything a running lane owns, in construction order; destroyed in reverse.
/// One io thread runs everything here; the outbox is reached through one async_store (reads on
/// the outbox reader thread, writes on its writer), never by a blocking call on the io thread.
/// The API and the uploader share `outbox_`; gossip builds its adapter over the same store.
class node {
public:
    node(const conf::config& cfg, std::unique_ptr<outbox::store> store)
        : cfg_(cfg), ioc_(1), store_(std::move(store)), outbox_(ioc_.get_executor(), *store_),
          gossip_(ioc_, *store_, cfg_), uploader_(ioc_, outbox_, cfg_),
          puller_(ioc_, outbox_, cfg_),
          api_(ioc_, {&cfg_, store_.get(), &gossip_, &uploader_, &outbox_, &puller_,
                      [this](const std::string& trigger) { return reload(trigger); },
                      [this] { return last_reload_; }}),
          signals_(ioc_, SIGINT, SIGTERM), hup_(ioc_, SIGHUP), poll_(ioc_),
          retention_(ioc_, outbox_, cfg_, tuning::prune_batch_rows), hard_stop_(ioc_),
          notify_(sd::notifier::from_environment()), notify_status_(ioc_), watchdog_(ioc_) {}

    int run() {
        // Wake replication, the catalog's anti-entropy and upload after every commit (the listener
        // runs on the writer thread; notify() only posts).
        store_->set_commit_listener([this](const outbox::commit_info& ci) {
            if (ci.new_own || ci.new_replicas)
                gossip_.notify();
            if (ci.catalog_changed)
                gossip_.notify_catalog(); // peers hear of a page from the cloud (or a peer) at once
            if (ci.new_peer_ack || ci.requeued || ci.new_own)
                uploader_.notify();
            api_.on_commit(ci); // requests waiting for acks (?wait=peer_ack|cloud_ack)
        });
        // A lane without peers and with a new outbox asks the cloud for its highest seq first.
        if (cfg_.cloud_enabled())
            gossip_.set_cloud_seq([this](auto done) { uploader_.highest_seq(std::move(done)); });
        try {
            gossip_.start();
            api_.start();
        } catch (const std::exception& e) {
            log::error("agent.start_failed", {{"error", e.what()}});
            store_->close();
            return 1;
        }
        // Takeover: the uploader asks before each round which origins to upload for.
        uploader_.set_cover([this] { return gossip_.covering(); });
        // The lane summary each upload carries (docs/cloud.md "Lane health"): links up.
        uploader_.set_peers([this] {
            const auto peers = gossip_.status();
            return cloud::peer_count{
                static_cast<std::size_t>(std::count_if(peers.begin(), peers.end(),
                                                       [](const auto& p) { return p.connected; })),
                cfg_.peers.size()};
        });
        uploader_.start();
        puller_.start(); // head office's changes (docs/downstream.md "Lane")
        register_gauges();
        log::info("agent.started",
                  {{"store", cfg_.store_id},
                   {"peer_port", std::to_string(gossip_.port())},
                   {"api", "127.0.0.1:" + std::to_string(api_.port())},
                   {"peers", std::to_string(cfg_.peers.size())},
                   {"quorum", std::to_string(cfg_.peer_ack_quorum)},
                   {"cloud", cfg_.cloud_enabled() ? cfg_.supabase_url : std::string("off")},
                   {"outbox", cfg_.outbox_path},
                   {"version", LANESYNC_VERSION}});

        signals_.async_wait([this](boost::system::error_code ec, int sig) {
            if (!ec)
                shutdown(sig);
        });
        wait_hup();
        schedule_poll();
        retention_.start(std::min<std::chrono::milliseconds>(std::chrono::seconds(10),
                                                             prune_every(cfg_.retention)));
        notify_ready();

        ioc_.run();
        store_->close();
        log::info("agent.stopped");
        return 0;
    }

private:
    /// Graceful shutdown (STYLE habit 14): stop accepting, close sessions with a close frame,
    /// stop the uploader, let the outbox commit, and let run() return. ioc.stop() only after
    /// a hard deadline.
    void shutdown(int sig) {
        log::info("agent.stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
        notify_.send("STOPPING=1\nSTATUS=stopping");
        stopping_ = true;
        poll_.cancel();
        hup_.cancel();
        retention_.stop();
        notify_status_.cancel();
        hard_stop_.expires_after(tuning::shutdown_grace + std::chrono::seconds(2));
        hard_stop_.async_wait([this](boost::system::error_code ec) {
            if (!ec) {
                log::warn("agent.hard_stop", {{"reason", "graceful shutdown took too long"}});
                ioc_.stop();
            }
        });
        api_.stop([this] {
            gossip_.stop([this] {
                uploader_.stop([this] {
                    puller_.stop([this] {
                        // Everything that could write has stopped; the writer drains its queue.
                        store_->close();
                        hard_stop_.cancel();
                        signals_.cancel();
                        watchdog_.cancel();
                        // Anything still holding work (an idle keep-alive API client) must not
                        // keep the process alive.
                        ioc_.stop();
                    });
                });
            });
        });
    }

    /// SIGHUP: a live reload of the env file (docs/configuration.md "Live reload").
    void wait_hup() {
        hup_.async_wait([this](boost::system::error_code ec, int) {
            if (ec || stopping_)
                return;
            reload("SIGHUP");
            wait_hup();
        });
    }

    /// Re-reads the env file the agent was started with and applies the keys that may change
    /// live, all or nothing (agent/reload.hpp decides). On the io thread, where every part
    /// that reads the configuration runs; the status document reads a copy.
    reload_result reload(const std::string& trigger) {
        std::optional<conf::loaded> next;
        std::string error;
        try {
            next = conf::load(cfg_.source);
        } catch (const std::exception& e) { // config_error: FILE:LINE: KEY: why, no secret
            error = e.what();
        }
        auto d = decide_reload(cfg_, next, error);
        d.result.trigger = trigger;
        d.result.at_ms = protocol::now_ms();
        for (const auto& w : d.result.warnings)
            log::warn("config.warning", {{"warning", w}});
        if (d.result.result == reload_result::outcome::applied)
            apply_reload(d.plan, next->cfg);
        log_reload(d.result);
        last_reload_ = d.result;
        return d.result;
    }

    void apply_reload(const conf::reload_plan& plan, const conf::config& next) {
        if (plan.service_key)
            log::add_secret(next.supabase_service_key); // before any line could hold it
        conf::apply_live(cfg_, next);
        log::level lvl = log::level::info;
        if (plan.log_level && log::parse_level(cfg_.log_level, lvl))
            log::set_level(lvl);
        if (plan.uploader || plan.service_key)
            uploader_.reconfigure(cfg_);
        if (plan.puller || plan.service_key)
            puller_.reconfigure(cfg_);
        if (plan.retention)
            retention_.reschedule(std::min<std::chrono::milliseconds>(std::chrono::seconds(10),
                                                                      prune_every(cfg_.retention)));
    }

    static void log_reload(const reload_result& r) {
        std::string keys;
        for (const auto& k : r.changed)
            keys += (keys.empty() ? "" : ",") + k;
        switch (r.result) {
        case reload_result::outcome::applied:
            log::info("config.reloaded", {{"trigger", r.trigger}, {"changed", keys}});
            break;
        case reload_result::outcome::unchanged:
            log::info("config.reload_unchanged", {{"trigger", r.trigger}});
            break;
        case reload_result::outcome::refused:
            log::warn("config.reload_refused", {{"trigger", r.trigger}, {"error", r.error}});
            break;
        case reload_result::outcome::invalid:
            log::warn("config.reload_invalid", {{"trigger", r.trigger}, {"error", r.error}});
            break;
        }
    }

    // Every external_change_poll: did another process commit? (PRAGMA data_version, read on
    // the outbox reader thread.) The next poll is armed when the answer is back.
    void schedule_poll() {
        poll_.expires_after(external_change_poll);
        poll_.async_wait([this](boost::system::error_code ec) {
            if (ec)
                return;
            outbox_.read([](outbox::store& s) { return s.changed_elsewhere(); },
                         [this](std::exception_ptr e, bool changed) {
                             if (e)
                                 log::warn("agent.poll_failed", {{"error", "changed_elsewhere"}});
                             if (changed) {
                                 gossip_.notify();
                                 uploader_.notify();
                             }
                             if (!stopping_)
                                 schedule_poll();
                         });
        });
    }

    /// Under systemd (Type=notify): READY=1 now that the outbox is open and both listeners are
    /// bound, also while a rebuild from peers is under way (STATUS= says so, so the start
    /// timeout never kills a lane that waits for a peer); then STATUS= every few seconds and
    /// WATCHDOG=1 from this io thread at half of WATCHDOG_USEC, so a stuck event loop gets the
    /// agent restarted. Nothing at all without NOTIFY_SOCKET.
    void notify_ready() {
        if (!notify_.enabled())
            return;
        const auto rb = gossip_.rebuild();
        notify_.send(rb.active || rb.start_check ? "READY=1\nSTATUS=started; rebuilding from peers"
                                                 : "READY=1\nSTATUS=started");
        log::info(
            "systemd.ready",
            {{"watchdog_ms", notify_.watchdog() ? std::to_string(notify_.watchdog()->count() / 1000)
                                                : std::string("off")}});
        schedule_notify_status(std::chrono::seconds(0));
        if (notify_.watchdog())
            schedule_watchdog();
    }

    void schedule_notify_status(std::chrono::steady_clock::duration in) {
        notify_status_.expires_after(in);
        notify_status_.async_wait([this](boost::system::error_code ec) {
            if (ec)
                return;
            outbox_.read([](outbox::store& s) { return s.get_counts(); },
                         [this](std::exception_ptr e, outbox::counts c) {
                             if (stopping_)
                                 return;
                             if (!e)
                                 notify_.send("STATUS=" + sd::status_line(status_inputs(c)));
                             schedule_notify_status(notify_status_interval);
                         });
        });
    }

    sd::status_inputs status_inputs(const outbox::counts& c) const {
        sd::status_inputs in;
        in.pending = c.pending;
        in.peer_ack = c.peer_ack;
        in.cloud_ack = c.cloud_ack;
        in.failed = c.failed;
        for (const auto& p : gossip_.status()) {
            ++in.peers_total;
            in.peers_up += p.connected ? 1 : 0;
        }
        const auto up = uploader_.get_status();
        in.cloud = !cfg_.cloud_enabled()    ? "off"
                   : up.paused              ? "paused"
                   : !up.last_error.empty() ? "retrying"
                                            : "ok";
        const auto rb = gossip_.rebuild();
        in.rebuilding = rb.active;
        in.rebuild_progress = rb.progress;
        return in;
    }

    void schedule_watchdog() {
        watchdog_.expires_after(*notify_.watchdog());
        watchdog_.async_wait([this](boost::system::error_code ec) {
            if (ec)
                return;
            notify_.send("WATCHDOG=1");
            schedule_watchdog();
        });
    }

    /// Gauges refreshed from the outbox on every /metrics scrape. The API renders /metrics on
    /// the outbox reader thread, so the collector's blocking reads are allowed there.
    void register_gauges() {
        auto& reg = metrics::global();
        auto& pending =
            reg.get_gauge("lanesync_outbox_messages", "Own messages by state", "state=\"pending\"");
        auto& peer_ack = reg.get_gauge("lanesync_outbox_messages", "Own messages by state",
                                       "state=\"peer_ack\"");
        auto& cloud_ack = reg.get_gauge("lanesync_outbox_messages", "Own messages by state",
                                        "state=\"cloud_ack\"");
        auto& failed =
            reg.get_gauge("lanesync_outbox_messages", "Own messages by state", "state=\"failed\"");
        // The upload backlog by priority (docs/uploader.md "Priorities"): [state][level].
        std::array<std::array<metrics::gauge*, 4>, 2> backlog{};
        for (std::size_t st = 0; st < 2; ++st)
            for (std::size_t level = 0; level < 4; ++level)
                backlog[st][level] = &reg.get_gauge(
                    "lanesync_outbox_backlog", "Own pending and peer_ack messages by priority",
                    std::string("state=\"") + (st == 0 ? "pending" : "peer_ack") +
                        "\",priority=\"" +
                        std::string(protocol::to_string(static_cast<protocol::priority>(level))) +
                        "\"");
        auto& oldest = reg.get_gauge("lanesync_oldest_pending_age_seconds",
                                     "Age of the oldest pending own message (0 when none)");
        auto& replicas =
            reg.get_gauge("lanesync_replicas_held", "Copies of other lanes' messages held");
        auto& connected =
            reg.get_gauge("lanesync_peers_connected", "Peers with an authenticated session");
        auto& disk_full = reg.get_gauge("lanesync_outbox_disk_full",
                                        "1 while the outbox's disk is full (writes refused)");
        auto& writable = reg.get_gauge("lanesync_outbox_writable",
                                       "1 while the outbox accepts writes (/healthz 200)");
        reg.add_collector([&, this, backlog] { // the array by value: it is a local
            auto h = store_->health();
            disk_full.set(h.disk_full ? 1 : 0);
            writable.set(h.writable ? 1 : 0);
            auto c = store_->get_counts();
            pending.set(static_cast<double>(c.pending));
            peer_ack.set(static_cast<double>(c.peer_ack));
            cloud_ack.set(static_cast<double>(c.cloud_ack));
            failed.set(static_cast<double>(c.failed));
            for (std::size_t level = 0; level < 4; ++level) {
                backlog[0][level]->set(static_cast<double>(c.pending_by_priority[level]));
                backlog[1][level]->set(static_cast<double>(c.peer_ack_by_priority[level]));
            }
            oldest.set(
                c.oldest_pending_stored_at_ms
                    ? static_cast<double>(protocol::now_ms() - *c.oldest_pending_stored_at_ms) /
                          1000.0
                    : 0.0);
            std::uint64_t r = 0;
            for (const auto& [o, n] : c.replicas)
                r += n;
            replicas.set(static_cast<double>(r));
            std::size_t up = 0;
            for (const auto& p : gossip_.status())
                up += p.connected ? 1 : 0;
            connected.set(static_cast<double>(up));
        });
        register_origin_gauges();
        register_catalog_gauges();
    }

    /// Per scope of head office's data: the applied version and how far behind the cloud's
    /// head it is (docs/api.md "/metrics").
    void register_catalog_gauges() {
        auto& reg = metrics::global();
        reg.add_collector([&reg, this] {
            for (const auto& s : store_->catalog_scopes()) {
                const std::string label = "scope=\"" + s.scope + "\"";
                reg.get_gauge("lanesync_catalog_through",
                              "Catalog version applied per scope (complete through it)", label)
                    .set(static_cast<double>(s.through));
                reg.get_gauge("lanesync_catalog_behind",
                              "Catalog versions per scope known at the cloud (or a peer) and not "
                              "applied yet (head - through)",
                              label)
                    .set(static_cast<double>(std::max<std::int64_t>(0, s.head - s.through)));
                reg.get_gauge("lanesync_catalog_keys", "Live catalog keys held per scope", label)
                    .set(static_cast<double>(s.keys));
            }
        });
    }

    /// The rebuild and per-origin gauges (docs/api.md "/metrics"). A covered series that is no
    /// longer covered is set to 0, not removed.
    void register_origin_gauges() {
        auto& reg = metrics::global();
        auto& rebuilding = reg.get_gauge("lanesync_rebuilding",
                                         "1 while this lane rebuilds its outbox from peers");
        reg.add_collector([&reg, &rebuilding, this] {
            rebuilding.set(gossip_.rebuild().active ? 1 : 0);
            auto views = gossip_.origins(store_->origin_summaries());
            for (auto* g : covered_series_)
                g->set(0);
            for (const auto& o : views) {
                const std::string label = "origin=\"" + o.origin + "\"";
                reg.get_gauge("lanesync_origin_held", "Messages held per origin (own and replicas)",
                              label)
                    .set(static_cast<double>(o.held));
                reg.get_gauge("lanesync_origin_cloud_through",
                              "Highest seq per origin known committed in the cloud", label)
                    .set(static_cast<double>(o.cloud_through));
                if (o.covered_by.empty())
                    continue;
                auto& g =
                    reg.get_gauge("lanesync_origin_covered",
                                  "1 while a lane uploads this origin's messages on its behalf",
                                  label + ",by=\"" + o.covered_by + "\"");
                g.set(1);
                if (std::find(covered_series_.begin(), covered_series_.end(), &g) ==
                    covered_series_.end())
                    covered_series_.push_back(&g);
            }
        });
    }

    /// The running configuration, owned: a live reload changes its live keys in place on the
    /// io thread (conf::apply_live). Gossip, the API and retention hold a reference to it; the
    /// uploader and the puller keep copies, handed the new one by reconfigure().
    conf::config cfg_;
    net::io_context ioc_;
    /// After ioc_: destroyed first, so reads still queued complete into a live io_context.
    std::unique_ptr<outbox::store> store_;
    outbox::async_store outbox_;
    lanes::gossip gossip_;
    cloud::uploader uploader_;
    cloud::puller puller_;
    api_server api_;
    net::signal_set signals_;
    net::signal_set hup_;
    net::steady_timer poll_;
    retention retention_;
    net::steady_timer hard_stop_;
    sd::notifier notify_;
    net::steady_timer notify_status_;
    net::steady_timer watchdog_;
    bool stopping_ = false;                    ///< io thread only
    std::optional<reload_result> last_reload_; ///< io thread only
    /// lanesync_origin_covered series set so far (the collector's, on the reader thread).
    std::vector<metrics::gauge*> covered_series_;
};

} // namespace

int run_agent(const conf::config& cfg) {
    log::level lvl = log::level::info;
    log::parse_level(cfg.log_level, lvl);
    log::configure({lvl, cfg.log_json, cfg.terminal_id});
    log::add_secret(cfg.peer_secret);
    log::add_secret(cfg.supabase_service_key);
    // A peer or API client vanishing mid-write must not kill the process.
    std::signal(SIGPIPE, SIG_IGN);

    std::unique_ptr<outbox::store> store;
    try {
        store = outbox::store::open({cfg.outbox_path, cfg.terminal_id, cfg.store_id, false});
    } catch (const std::exception& e) {
        // SQLite says only "unable to open database file" for a read-only mount: say why.
        std::string why = e.what();
        auto dir = std::filesystem::path(cfg.outbox_path).parent_path();
        struct statvfs st {};
        if (::statvfs(dir.empty() ? "." : dir.c_str(), &st) == 0 && (st.f_flag & ST_RDONLY))
            why += " (the outbox's folder is on a read-only file system; the agent must write "
                   "its outbox: remount it read-write)";
        log::error("agent.start_failed", {{"error", why}});
        return 1;
    }
    try {
        node n(cfg, std::move(store));
        return n.run();
    } catch (const std::exception& e) {
        log::error("agent.failed", {{"error", e.what()}});
        return 1;
    }
}

} // namespace lanesync::agent
