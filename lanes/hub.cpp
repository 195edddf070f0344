#include "lanes/hub.hpp"

#include "base/log.hpp"
#include "base/metrics.hpp"
#include "protocol/close_code.hpp"
#include "protocol/message.hpp"

#include <algorithm>

namespace lanesync::lanes {
namespace {

struct hub_metrics {
    metrics::histogram& publish_to_peer_ack = metrics::global().get_histogram(
        "lanesync_publish_to_peer_ack_seconds", "Time from publish to peer_ack of own messages");
    metrics::counter& peer_acked = metrics::global().get_counter(
        "lanesync_peer_acked_total", "Own messages that reached peer_ack");
    metrics::counter& sessions = metrics::global().get_counter(
        "lanesync_peer_sessions_total", "Authenticated peer sessions started");
};

hub_metrics& hm() {
    static hub_metrics m;
    return m;
}

/// The URL as a Prometheus label value (backslash, quote and newline escaped).
std::string label_value(const std::string& s) {
    std::string r;
    for (char c : s) {
        if (c == '\\' || c == '"')
            r += '\\';
        if (c == '\n') {
            r += "\\n";
            continue;
        }
        r += c;
    }
    return r;
}

std::vector<std::string> link_urls(const conf::config& cfg) {
    std::vector<std::string> out;
    for (const auto& p : cfg.peers)
        out.push_back(p.text);
    return out;
}

} // namespace

hub::hub(boost::asio::any_io_executor ex, outbox::store& store, const conf::config& cfg)
    : store_(store), async_(std::move(ex), store), cfg_(cfg),
      rebuild_(cfg.terminal_id, link_urls(cfg), rebuild_effects_()),
      cover_(
          cfg.terminal_id, protocol::now_ms(),
          std::chrono::duration_cast<std::chrono::milliseconds>(cfg.cloud_takeover_after).count()) {
    for (const auto& p : cfg_.peers) {
        auto& l = links_[p.text];
        l.permanent_gauge = &metrics::global().get_gauge(
            "lanesync_peer_link_permanent_failure",
            "1 while an outgoing peer link's last ending was permanent (long backoff)",
            "peer=\"" + label_value(p.text) + "\"");
    }
    hm(); // register the series now, so /metrics lists them (at 0) before the first ack
}

rebuild_effects hub::rebuild_effects_() {
    rebuild_effects fx;
    // The outbox completions run on the io_context; the hub stays alive while one is pending.
    fx.begin = [this](std::string reason, std::function<void(std::string)> done) {
        async_.begin_rebuild(std::move(reason), [self = weak_from_this().lock(),
                                                 done = std::move(done)](outbox::count_outcome o) {
            done(o.ok ? std::string() : o.error);
        });
    };
    fx.finish = [this](std::vector<std::string> excluded,
                       std::function<void(std::string, outbox::rebuild_state)> done) {
        async_.finish_rebuild(
            std::move(excluded), [this, self = weak_from_this().lock(),
                                  done = std::move(done)](outbox::count_outcome o) mutable {
                if (!o.ok)
                    return done(o.error, outbox::rebuild_state{});
                async_.get_rebuild_state(
                    [self, done = std::move(done)](outbox::rebuild_state st) { done({}, st); });
            });
    };
    fx.close_sessions = [this](std::string reason) {
        close_all(protocol::close_code::going_away, reason);
    };
    fx.raise_floor = [this](std::uint64_t through,
                            std::function<void(std::string, std::uint64_t)> done) {
        // An own floor of through + 1: held messages up to it become cloud_ack, the own hwm
        // rises to it.
        protocol::hwm_map floor{{cfg_.terminal_id, through + 1}};
        async_.store_replicas({}, std::move(floor), true,
                              [self = weak_from_this().lock(), id = cfg_.terminal_id,
                               done = std::move(done)](outbox::replicas_outcome o) {
                                  auto own = o.hwm.find(id);
                                  done(o.ok ? std::string() : o.error,
                                       own == o.hwm.end() ? 0 : own->second);
                              });
    };
    return fx;
}

std::string hub::join(const std::shared_ptr<session_handle>& s, const std::string& peer_id,
                      bool outbound, const std::string& url) {
    bool make_sender = false;
    {
        std::lock_guard lock(mutex_);
        if (peer_id == cfg_.terminal_id)
            return "duplicate terminal id: " + peer_id + " is this lane's own id";
        // Drop entries whose session is gone.
        std::erase_if(sessions_, [](const entry& e) { return e.handle.expired(); });
        bool have_sender = false;
        for (const auto& e : sessions_) {
            if (e.peer_id != peer_id)
                continue;
            // One inbound and one outbound session per peer are normal (both lanes list each
            // other); a second session in the same direction is another lane using the same id.
            if (e.outbound == outbound)
                return "duplicate terminal id: " + peer_id + " is already connected";
            have_sender = have_sender || e.sender;
        }
        make_sender = !have_sender;
        sessions_.push_back(entry{s, s.get(), peer_id, outbound, make_sender, url});
        peers_[peer_id];
        if (outbound && !url.empty()) {
            auto& l = links_[url];
            l.peer_id = peer_id;
            l.claimed_id = peer_id;
            l.last_error.clear();
            l.next_attempt_at_ms.reset();
            l.permanent = false;
            l.failure.clear();
            if (l.permanent_gauge)
                l.permanent_gauge->set(0);
        }
    }
    if (outbound && !url.empty())
        rebuild_.link_terminal(url, peer_id);
    if (make_sender)
        s->set_sender(true);
    hm().sessions.inc();
    return {};
}

void hub::leave(const session_handle* s, const std::string& why) {
    std::shared_ptr<session_handle> successor;
    bool last = false;
    std::string peer;
    {
        std::lock_guard lock(mutex_);
        auto it = std::find_if(sessions_.begin(), sessions_.end(),
                               [&](const entry& e) { return e.raw == s; });
        if (it == sessions_.end())
            return;
        entry gone = *it;
        sessions_.erase(it);
        // Its catalog snapshots under way are orphans now: any peer may restart them.
        std::erase_if(catalog_owners_, [s](const auto& o) { return o.second == s; });
        peer = gone.peer_id;
        last = std::none_of(sessions_.begin(), sessions_.end(),
                            [&](const entry& e) { return e.peer_id == gone.peer_id; });
        peers_[gone.peer_id].last_error = why;
        if (gone.sender) {
            for (auto& e : sessions_) {
                if (e.peer_id != gone.peer_id)
                    continue;
                if (auto h = e.handle.lock()) {
                    e.sender = true;
                    successor = std::move(h);
                    break;
                }
            }
        }
    }
    if (successor)
        successor->set_sender(true);
    if (last)
        cover_.peer_gone(peer);
}

void hub::on_peer_ack(const std::string& peer_id, std::uint64_t acked_through) {
    {
        std::lock_guard lock(mutex_);
        auto& p = peers_[peer_id];
        p.last_ack_at_ms = protocol::now_ms();
        if (acked_through <= p.acked_through)
            return;
        p.acked_through = acked_through;
    }
    // Completes on the io_context (the adapter's executor), not on the writer thread.
    async_.peer_acked(peer_id, acked_through, cfg_.peer_ack_quorum, [](outbox::peer_ack_outcome o) {
        if (!o.ok) {
            log::error("outbox.peer_ack_failed", {{"error", o.error}});
            return;
        }
        for (auto ms : o.promoted_latency_ms)
            hm().publish_to_peer_ack.observe(static_cast<double>(ms) / 1e3);
        hm().peer_acked.inc(o.promoted_latency_ms.size());
    });
}

void hub::add_batch_stats(const std::string& peer_id, bool sent) {
    std::lock_guard lock(mutex_);
    auto& p = peers_[peer_id];
    (sent ? p.batches_sent : p.batches_received)++;
}

void hub::link_state(const std::string& url, link_ending e) {
    std::lock_guard lock(mutex_);
    auto& l = links_[url];
    l.last_error = std::move(e.last_error);
    l.next_attempt_at_ms = e.next_attempt_at_ms;
    l.permanent = e.permanent;
    l.failure = std::move(e.failure);
    if (!e.claimed_id.empty())
        l.claimed_id = std::move(e.claimed_id);
    if (l.permanent_gauge)
        l.permanent_gauge->set(l.permanent ? 1 : 0);
}

void hub::watch_link(const std::string& url, std::function<void()> wake) {
    std::lock_guard lock(mutex_);
    links_[url].wake = std::move(wake);
}

void hub::peer_reachable(const std::string& peer_id) {
    std::vector<std::function<void()>> wakes;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [url, l] : links_)
            if (l.wake && (l.claimed_id == peer_id || l.peer_id == peer_id))
                wakes.push_back(l.wake);
    }
    for (auto& w : wakes)
        w();
}

std::vector<std::shared_ptr<session_handle>> hub::live_sessions(bool senders_only) const {
    std::vector<std::shared_ptr<session_handle>> live;
    std::lock_guard lock(mutex_);
    for (const auto& e : sessions_)
        if (!senders_only || e.sender)
            if (auto h = e.handle.lock())
                live.push_back(std::move(h));
    return live;
}

void hub::wake_all() {
    for (auto& h : live_sessions(true))
        h->wake();
}

void hub::news_all() {
    for (auto& h : live_sessions(false))
        h->send_news();
}

void hub::catalog_have_all() {
    for (auto& h : live_sessions(false))
        h->send_catalog_have();
}

void hub::catalog_changed() {
    if (catalog_changed_)
        catalog_changed_();
    else
        catalog_have_all();
}

protocol::snapshot_owner hub::catalog_owner(const protocol::catalog_scope_state& st,
                                            const session_handle* me) const {
    using protocol::snapshot_owner;
    if (!st.snapshot_active)
        return snapshot_owner::none;
    if (st.source == "cloud")
        return snapshot_owner::cloud;
    std::lock_guard lock(mutex_);
    auto it = catalog_owners_.find(st.scope);
    if (it == catalog_owners_.end())
        return snapshot_owner::orphan;
    return it->second == me ? snapshot_owner::this_session : snapshot_owner::other_session;
}

void hub::claim_catalog_snapshot(const std::string& scope, const session_handle* me) {
    std::lock_guard lock(mutex_);
    catalog_owners_[scope] = me;
}

void hub::release_catalog_snapshot(const std::string& scope, const session_handle* me) {
    std::lock_guard lock(mutex_);
    if (auto it = catalog_owners_.find(scope); it != catalog_owners_.end() && it->second == me)
        catalog_owners_.erase(it);
}

std::vector<std::string> hub::connected_peers() const {
    std::vector<std::string> out;
    {
        std::lock_guard lock(mutex_);
        for (const auto& e : sessions_)
            if (!e.handle.expired())
                out.push_back(e.peer_id);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

void hub::note_incarnation(const std::string& peer_id, const std::string& inc) {
    std::lock_guard lock(mutex_);
    peers_[peer_id].incarnation = inc;
}

std::size_t hub::close_all(std::uint16_t code, const std::string& reason) {
    auto live = live_sessions(false);
    for (auto& h : live)
        h->close(code, reason);
    return live.size();
}

std::size_t hub::session_count() const {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(std::count_if(
        sessions_.begin(), sessions_.end(), [](const entry& e) { return !e.handle.expired(); }));
}

std::vector<peer_status> hub::status() const {
    std::uint64_t last_seq = 0;
    // Reading the counts takes the store's read lock; do it outside our mutex.
    last_seq = store_.get_counts().own_last_seq;

    std::lock_guard lock(mutex_);
    std::vector<peer_status> out;
    auto fill = [&](peer_status& ps) {
        for (const auto& e : sessions_) {
            if (e.peer_id != ps.terminal_id || e.handle.expired())
                continue;
            ps.connected = true;
            if (e.sender)
                ps.outbound = e.outbound;
        }
        auto it = peers_.find(ps.terminal_id);
        if (it != peers_.end()) {
            ps.acked_through_seq = it->second.acked_through;
            ps.last_ack_at_ms = it->second.last_ack_at_ms;
            ps.batches_sent = it->second.batches_sent;
            ps.batches_received = it->second.batches_received;
            ps.incarnation = it->second.incarnation;
            if (ps.last_error.empty() && !ps.connected)
                ps.last_error = it->second.last_error;
        }
        ps.lag = last_seq > ps.acked_through_seq ? last_seq - ps.acked_through_seq : 0;
    };
    std::vector<std::string> listed;
    for (const auto& p : cfg_.peers) {
        peer_status ps;
        ps.url = p.text;
        auto l = links_.find(p.text);
        if (l != links_.end()) {
            ps.terminal_id = l->second.peer_id;
            ps.last_error = l->second.last_error;
            ps.next_attempt_at_ms = l->second.next_attempt_at_ms;
            ps.permanent_failure = l->second.permanent;
            ps.failure = l->second.failure;
        }
        if (!ps.terminal_id.empty()) {
            fill(ps);
            listed.push_back(ps.terminal_id);
        }
        out.push_back(std::move(ps));
    }
    // Inbound-only peers (they dial us; we do not dial them).
    for (const auto& [id, info] : peers_) {
        if (std::find(listed.begin(), listed.end(), id) != listed.end())
            continue;
        peer_status ps;
        ps.terminal_id = id;
        fill(ps);
        out.push_back(std::move(ps));
    }
    return out;
}

} // namespace lanesync::lanes
