#include "lanes/cover.hpp"

#include <algorithm>

namespace lanesync::lanes {

cover_state::cover_state(std::string self, std::int64_t start_ms, std::int64_t after_ms)
    : self_(self), after_ms_(after_ms), live_(std::move(self), start_ms) {}

cover_state::change cover_state::tick(const std::vector<std::string>& connected,
                                      const std::vector<outbox::origin_summary>& origins,
                                      std::int64_t now_ms) {
    change c;
    std::lock_guard lock(mutex_);
    for (const auto& id : connected)
        live_.connected(id, now_ms);
    std::vector<std::string> held;
    for (const auto& o : origins) {
        auto& known = cloud_[o.origin];
        if (o.cloud_through > known) {
            known = o.cloud_through;
            c.news_due = true;
        }
        if (o.own || o.origin == self_)
            continue;
        live_.add_known(o.origin);
        // Only an origin with messages not known in the cloud needs someone to upload them
        // (known: the outbox's cloud_through or a higher one a peer told since), and only if
        // some of them can still be uploaded: rows that all failed or are cloud_ack above a gap
        // are nothing to take over, so this lane must not hold the takeover for them.
        if (o.hwm > known && o.to_upload > 0)
            held.push_back(o.origin);
    }
    std::sort(held.begin(), held.end());
    if (held != holds_)
        c.news_due = true;
    holds_ = held;
    auto now_cover = protocol::origins_to_cover(live_, held, peer_holds_, now_ms, after_ms_);
    for (const auto& o : now_cover)
        if (!std::binary_search(covering_.begin(), covering_.end(), o))
            c.started.push_back(o);
    for (const auto& o : covering_)
        if (!std::binary_search(now_cover.begin(), now_cover.end(), o))
            c.stopped.push_back(o);
    if (!c.started.empty() || !c.stopped.empty())
        c.news_due = true;
    covering_ = std::move(now_cover);
    return c;
}

void cover_state::on_news(const std::string& peer, const std::map<std::string, std::uint64_t>& seen,
                          std::vector<std::string> cover, std::vector<std::string> holds,
                          std::int64_t now_ms) {
    std::lock_guard lock(mutex_);
    live_.connected(peer, now_ms);
    live_.report(seen, now_ms);
    peer_cover_[peer] = std::move(cover);
    peer_holds_[peer] = std::move(holds);
}

void cover_state::peer_gone(const std::string& peer) {
    std::lock_guard lock(mutex_);
    peer_cover_.erase(peer);
    peer_holds_.erase(peer);
}

bool cover_state::take_cloud_through(const std::string& origin, std::uint64_t through) {
    std::lock_guard lock(mutex_);
    auto& known = cloud_[origin];
    if (through <= known)
        return false;
    known = through;
    return true;
}

protocol::news cover_state::news(std::int64_t now_ms) const {
    std::lock_guard lock(mutex_);
    protocol::news n;
    n.seen = live_.ages(now_ms);
    for (const auto& [o, t] : cloud_)
        if (t > 0)
            n.cloud[o] = t;
    n.cover = covering_;
    n.holds = holds_;
    return n;
}

std::vector<std::string> cover_state::covering() const {
    std::lock_guard lock(mutex_);
    return covering_;
}

std::vector<origin_view>
cover_state::origins(const std::vector<outbox::origin_summary>& held) const {
    std::lock_guard lock(mutex_);
    std::vector<origin_view> out;
    for (const auto& o : held) {
        origin_view v;
        v.origin = o.origin;
        v.own = o.own;
        v.hwm = o.hwm;
        v.held = o.held;
        v.cloud_through = o.cloud_through;
        if (std::binary_search(covering_.begin(), covering_.end(), o.origin)) {
            v.covered_by = self_;
        } else {
            // The lowest peer id that says it covers this origin.
            for (const auto& [peer, list] : peer_cover_)
                if (std::find(list.begin(), list.end(), o.origin) != list.end()) {
                    v.covered_by = peer;
                    break;
                }
        }
        if (!o.own)
            v.last_seen_ms = live_.last_seen(o.origin);
        out.push_back(std::move(v));
    }
    return out;
}

} // namespace lanesync::lanes
