#include "base/log_limit.hpp"

#include "base/log.hpp"

namespace lanesync::log {

rate_limiter::rate_limiter(std::size_t per_window, std::int64_t window_ms)
    : per_window_(per_window), window_ms_(window_ms > 0 ? window_ms : 1) {}

rate_limiter::verdict rate_limiter::admit(std::string_view key, std::int64_t now_ms) {
    auto it = keys_.find(key);
    if (it == keys_.end())
        it = keys_.emplace(std::string(key), window{now_ms, 0, 0}).first;
    auto& w = it->second;
    verdict v;
    if (now_ms - w.start >= window_ms_ || now_ms < w.start) {
        // A new window: what the last one dropped is reported with this line.
        v.suppressed = w.dropped;
        w = window{now_ms, 0, 0};
    }
    if (w.written < per_window_) {
        ++w.written;
        v.write = true;
        return v;
    }
    v.now_suppressing = w.dropped == 0;
    ++w.dropped;
    return v;
}

limited_lines::limited_lines(std::string event, std::size_t per_window,
                             std::chrono::milliseconds window)
    : event_(std::move(event)), window_ms_(window.count()), per_window_(per_window),
      limiter_(per_window, window.count()) {}

bool limited_lines::gate(std::string_view key) {
    rate_limiter::verdict v;
    {
        auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
        std::lock_guard lk(mutex_);
        v = limiter_.admit(key, now);
    }
    if (v.suppressed > 0)
        log::warn("log.suppressed", {{"event", event_},
                                     {"key", std::string(key)},
                                     {"dropped", std::to_string(v.suppressed)}});
    if (v.now_suppressing)
        log::warn("log.suppressing", {{"event", event_},
                                      {"key", std::string(key)},
                                      {"limit", std::to_string(per_window_)},
                                      {"window_s", std::to_string(window_ms_ / 1000)}});
    return v.write;
}

} // namespace lanesync::log
