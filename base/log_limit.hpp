#pragma once
/// Rate-limited warning lines, so that a flood (a port scan, a slowloris, a client opening
/// connections in a loop) cannot fill the disk with logs. Counters in /metrics stay exact; only
/// the log lines are limited: at most `per_window` lines per key (e.g. a refusal reason) per
/// window, then one "log.suppressing" line, and when the next line of that key is written
/// (in a later window), one "log.suppressed" line first with how many were dropped.
///
/// rate_limiter is the pure decision (no clock, no lock: unit-tested); limited_lines is the
/// thread-safe wrapper that reads the clock and writes the two bookkeeping lines.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace lanesync::log {

class rate_limiter {
public:
    rate_limiter(std::size_t per_window, std::int64_t window_ms);

    struct verdict {
        bool write = false;           ///< write this event's line
        bool now_suppressing = false; ///< the first line dropped in this window: say so once
        std::uint64_t suppressed = 0; ///< lines of this key dropped before: report them first
    };

    /// One more event of `key` at `now_ms` (any monotonic milliseconds).
    verdict admit(std::string_view key, std::int64_t now_ms);

    /// Keys seen (bounded by the caller's key set: reasons, not addresses).
    std::size_t keys() const { return keys_.size(); }

private:
    struct window {
        std::int64_t start = 0;
        std::size_t written = 0;
        std::uint64_t dropped = 0;
    };
    std::size_t per_window_;
    std::int64_t window_ms_;
    std::map<std::string, window, std::less<>> keys_;
};

/// Thread-safe. `gate(key)` returns true when the caller should write its warning line now;
/// it writes "log.suppressing" / "log.suppressed event=<event> key=<key> ..." itself.
class limited_lines {
public:
    explicit limited_lines(std::string event, std::size_t per_window = 10,
                           std::chrono::milliseconds window = std::chrono::minutes(1));
    bool gate(std::string_view key);

private:
    std::string event_;
    std::int64_t window_ms_;
    std::size_t per_window_;
    std::mutex mutex_;
    rate_limiter limiter_;
};

} // namespace lanesync::log
