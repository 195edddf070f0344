// The uploader's pacing rules (pacing.hpp): the priority barrier between rounds in flight,
// and the adaptive request timeout.

#include "cloud/pacing.hpp"

#include <algorithm>

namespace lanesync::cloud {

priority_span span_of(const std::vector<outbox::record>& recs) {
    priority_span s{3, 0};
    for (const auto& r : recs) {
        auto p = static_cast<std::uint8_t>(r.msg.prio);
        s.most_urgent = std::min(s.most_urgent, p);
        s.least_urgent = std::max(s.least_urgent, p);
    }
    if (recs.empty())
        s = {};
    return s;
}

bool may_start_beside(const std::vector<priority_span>& running, priority_span next) {
    return std::all_of(running.begin(), running.end(),
                       [&](const priority_span& r) { return next.most_urgent <= r.most_urgent; });
}

std::size_t rounds_allowed(std::size_t max_in_flight, std::uint32_t consecutive_failures) {
    if (consecutive_failures > 0)
        return 1;
    return std::max<std::size_t>(max_in_flight, 1);
}

void answer_times::answered(std::chrono::milliseconds took) {
    recent.push_back(took);
    while (recent.size() > keep)
        recent.pop_front();
    timeouts_in_row = 0;
}

void answer_times::timed_out() {
    ++timeouts_in_row;
}

std::chrono::milliseconds request_timeout(const answer_times& t, std::chrono::milliseconds floor,
                                          std::chrono::milliseconds cap) {
    if (t.recent.empty())
        return cap;
    auto slowest = *std::max_element(t.recent.begin(), t.recent.end());
    auto out = std::max(slowest * 10, floor);
    for (std::uint32_t i = 0; i < t.timeouts_in_row && out < cap; ++i)
        out *= 2;
    return std::min(out, cap);
}

} // namespace lanesync::cloud
