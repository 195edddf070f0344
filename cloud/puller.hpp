#pragma once
/// The cloud puller: head office's changes (prices, products, customers, ...) pulled from the
/// sync-pull edge function with the lane's per-scope cursors, each page applied through the
/// outbox's apply_catalog (one transaction per page: rows and cursor together). Beside the
/// uploader: the same SUPABASE_URL, service key, headers and CA (docs/downstream.md "Lane").
///
/// Polls every CLOUD_PULL_INTERVAL_MS, at once after an answer that said `more`, and at once
/// on pull_now() (sync-now); after a failure it backs off with base/backoff's full jitter
/// between SYNC_BACKOFF_BASE_MS and SYNC_BACKOFF_MAX_MS. Off when the cloud is off
/// (SUPABASE_URL empty) or CLOUD_PULL_INTERVAL_MS is 0. The rules are pure functions
/// (cloud/pull_policy.hpp, cloud/pull_wire.hpp); this class only carries them out on a strand.

#include "base/tuning.hpp"
#include "conf/config.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace boost::asio {
class io_context;
}

namespace lanesync::outbox {
class async_store;
}

namespace lanesync::cloud {

/// A snapshot for /v1/status (`pull`) and `lanesync status`.
struct pull_status {
    bool enabled = false;
    /// "off", "idle" (waiting for the next poll), "pulling", "backoff" (after a failure).
    std::string state = "off";
    std::optional<std::int64_t> last_ok_at_ms;
    std::optional<std::int64_t> last_attempt_at_ms;
    std::optional<std::int64_t> next_attempt_at_ms;
    std::string last_error; ///< empty after a success; never holds the key or answer text
    std::optional<int> last_http_status;
    std::uint32_t consecutive_failures = 0;
    std::uint64_t requests_ok = 0, requests_failed = 0;
    std::uint64_t pages_applied = 0, changes_applied = 0, changes_skipped = 0;
    std::int64_t cloud_head = 0; ///< the answer's top-level head, last time
};

/// Limits of the puller; tests shrink them.
struct pull_limits {
    std::chrono::milliseconds request_timeout = tuning::cloud_request_timeout;
    std::size_t max_response_bytes = 64u << 20; ///< a 1000-row page of large rows fits
    std::size_t limit = 500;                    ///< changes per scope per answer
};

class puller {
public:
    /// Does not start anything. `db` outlives the puller. Throws std::runtime_error when the
    /// TLS context cannot be set up (SUPABASE_CA_FILE unreadable).
    puller(boost::asio::io_context& ioc, outbox::async_store& db, const conf::config& cfg,
           pull_limits lim = {});
    ~puller();
    puller(const puller&) = delete;
    puller& operator=(const puller&) = delete;

    /// Starts the loop (no-op when off). Thread-safe.
    void start();
    /// Cancels the timer and the request in flight; `done` runs once the loop ended. A page
    /// being applied commits or not as a whole. Thread-safe.
    void stop(std::function<void()> done);
    /// Pull now, even while backing off (sync-now). Thread-safe.
    void pull_now();
    /// The configuration changed (a live reload): the puller takes `cfg` (a copy; only live
    /// keys differ), its client the new SUPABASE_SERVICE_KEY, and the loop pulls once at once (also
    /// while backing off when the key is new), then keeps the current CLOUD_PULL_INTERVAL_MS.
    /// Thread-safe.
    void reconfigure(conf::config cfg);
    /// Thread-safe snapshot.
    pull_status get_status() const;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace lanesync::cloud
