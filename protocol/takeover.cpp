#include "protocol/takeover.hpp"

#include <algorithm>

namespace lanesync::protocol {

liveness::liveness(std::string self, std::int64_t start_ms)
    : self_(std::move(self)), start_ms_(start_ms) {}

void liveness::add_known(const std::string& id) {
    if (id != self_)
        last_.try_emplace(id, start_ms_);
}

void liveness::connected(const std::string& id, std::int64_t now_ms) {
    if (id == self_)
        return;
    auto [it, added] = last_.try_emplace(id, now_ms);
    if (!added)
        it->second = std::max(it->second, now_ms);
}

void liveness::report(const std::map<std::string, std::uint64_t>& seen_age_ms,
                      std::int64_t now_ms) {
    for (const auto& [id, age] : seen_age_ms) {
        if (id == self_)
            continue;
        // Ages are relative, so no two lanes' clocks are compared; one older than the epoch
        // counts as seen at 0.
        const auto now = static_cast<std::uint64_t>(std::max<std::int64_t>(now_ms, 0));
        connected(id, static_cast<std::int64_t>(now - std::min(age, now)));
    }
}

std::map<std::string, std::uint64_t> liveness::ages(std::int64_t now_ms) const {
    std::map<std::string, std::uint64_t> r;
    for (const auto& [id, at] : last_)
        r[id] = at >= now_ms ? 0 : static_cast<std::uint64_t>(now_ms - at);
    return r;
}

std::optional<std::int64_t> liveness::last_seen(const std::string& id) const {
    if (auto it = last_.find(id); it != last_.end())
        return it->second;
    return std::nullopt;
}

std::vector<std::string> liveness::known() const {
    std::vector<std::string> r;
    r.reserve(last_.size());
    for (const auto& [id, at] : last_)
        r.push_back(id);
    return r; // a std::map iterates in byte order
}

namespace {

bool seen_within(const liveness& l, const std::string& id, std::int64_t now_ms,
                 std::int64_t after_ms) {
    const std::int64_t at = l.last_seen(id).value_or(l.start_ms());
    return now_ms - at < after_ms;
}

} // namespace

std::vector<std::string> holders_of(const std::string& origin, const std::string& self,
                                    bool self_holds, const holdings& peers) {
    std::vector<std::string> r;
    if (self_holds)
        r.push_back(self);
    for (const auto& [peer, holds] : peers)
        if (std::find(holds.begin(), holds.end(), origin) != holds.end())
            r.push_back(peer);
    std::sort(r.begin(), r.end());
    r.erase(std::unique(r.begin(), r.end()), r.end());
    return r;
}

std::string taker(const liveness& l, const std::string& origin,
                  const std::vector<std::string>& holders, std::int64_t now_ms,
                  std::int64_t after_ms) {
    if (origin == l.self() || seen_within(l, origin, now_ms, after_ms))
        return {};
    std::string best;
    for (const auto& id : holders) {
        if (id == origin || (!best.empty() && id >= best))
            continue;
        if (id == l.self() || seen_within(l, id, now_ms, after_ms))
            best = id;
    }
    return best;
}

std::vector<std::string> origins_to_cover(const liveness& l, const std::vector<std::string>& held,
                                          const holdings& peers, std::int64_t now_ms,
                                          std::int64_t after_ms) {
    std::vector<std::string> r;
    for (const auto& origin : held)
        if (taker(l, origin, holders_of(origin, l.self(), true, peers), now_ms, after_ms) ==
            l.self())
            r.push_back(origin);
    std::sort(r.begin(), r.end());
    r.erase(std::unique(r.begin(), r.end()), r.end());
    return r;
}

} // namespace lanesync::protocol
