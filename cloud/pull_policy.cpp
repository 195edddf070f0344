// The puller's decisions (cloud/pull_policy.hpp).
#include "cloud/pull_policy.hpp"

#include "base/backoff.hpp"

#include <algorithm>

namespace lanesync::cloud::pull {

std::vector<cursor> cursors_for(const std::vector<protocol::catalog_scope_state>& scopes,
                                const std::set<std::string>& restart, std::int64_t now_ms) {
    std::vector<cursor> out;
    out.reserve(scopes.size());
    for (const auto& s : scopes) {
        cursor c{s.scope, s.through, {}};
        const bool ours = s.snapshot_active && s.source == "cloud";
        const bool stale_peer = s.snapshot_active && s.source != "cloud" &&
                                now_ms - s.applied_at_ms >= stale_snapshot.count();
        if (restart.contains(s.scope) || stale_peer || (ours && s.resume.empty()))
            c.through = 0;
        else if (ours)
            c.resume = s.resume;
        out.push_back(std::move(c));
    }
    return out;
}

next_pull after_success(bool more, std::chrono::milliseconds interval) {
    return {more ? std::chrono::milliseconds(0) : interval, 0};
}

next_pull after_failure(std::uint32_t failures, std::chrono::milliseconds base,
                        std::chrono::milliseconds max, std::chrono::milliseconds interval,
                        std::uint64_t random_value) {
    auto ms = backoff::full_jitter_ms(base.count(), max.count(), failures, random_value);
    if (interval.count() > 0)
        ms = std::min<std::int64_t>(ms, interval.count());
    return {std::chrono::milliseconds(std::max<std::int64_t>(ms, 1)), failures + 1};
}

std::set<std::string> restart_after_bad_request(const std::vector<cursor>& sent) {
    std::set<std::string> out;
    for (const auto& c : sent)
        if (!c.resume.empty())
            out.insert(c.scope);
    return out;
}

} // namespace lanesync::cloud::pull
