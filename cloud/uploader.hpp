#pragma once
/// The cloud uploader: sends this lane's ready messages to the Supabase edge function in
/// batches and records the answers in the outbox (SPEC section 8, docs/cloud.md).
///
/// Up to tuning::cloud_requests_in_flight requests in flight (one after a failure, until a
/// request succeeds; rounds of different priority levels never overlap: cloud/pacing.hpp).
/// A batch is CLOUD_BATCH_SIZE messages in seq order, also capped at
/// tuning::cloud_max_request_bytes. Each request's deadline adapts to the recent answers
/// (pacing.hpp request_timeout, at most tuning::cloud_request_timeout). Transient failures
/// (connection errors, timeouts, 401/403, 404, 408, 429, 5xx, 546, malformed answers) retry forever
/// with full-jitter exponential backoff between SYNC_BACKOFF_BASE_MS and SYNC_BACKOFF_MAX_MS, reset
/// after a success; 413 splits the batch. The service key is never logged or shown in status. The
/// rules
/// (`is_transient`, `decide`) are in cloud/policy.hpp, pure and tested without sockets.
///
/// Heavy Boost.Beast headers stay in uploader.cpp; this header only forward-declares Asio.

#include "base/tuning.hpp"
#include "conf/config.hpp"
#include "outbox/outbox.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace lanesync::outbox {
class async_store;
}

namespace lanesync::cloud {

/// A snapshot for /v1/status and `lanesync status`.
struct status {
    bool enabled = false;
    bool paused = false;
    bool in_flight = false; ///< a request is unanswered
    std::size_t requests_in_flight = 0;
    std::optional<std::int64_t> last_success_at_ms;
    std::optional<std::int64_t> last_attempt_at_ms;
    std::string last_error; ///< empty when the last attempt succeeded
    std::optional<int> last_http_status;
    std::optional<std::int64_t> next_attempt_at_ms; ///< set while backing off
    std::int64_t current_backoff_ms = 0;
    std::uint32_t consecutive_failures = 0;
    std::uint64_t requests_ok = 0, requests_failed = 0, messages_acked = 0, messages_rejected = 0;
    /// Replicas uploaded on their origin's behalf (set_cover) that the cloud confirmed.
    std::uint64_t messages_covered = 0;
};

/// Engineering limits of the uploader; the defaults are base/tuning.hpp. Tests shrink them
/// (a 30 s timeout or 404 floor does not fit in a unit test); the agent uses the defaults.
struct limits {
    std::chrono::milliseconds request_timeout = tuning::cloud_request_timeout; ///< the cap
    std::chrono::milliseconds request_timeout_floor = tuning::cloud_request_timeout_floor;
    std::size_t requests_in_flight = tuning::cloud_requests_in_flight;
    std::chrono::milliseconds not_found_retry = tuning::cloud_not_found_retry;
    std::size_t max_request_bytes = tuning::cloud_max_request_bytes;
    std::size_t max_response_bytes = tuning::cloud_max_response_bytes;
    std::chrono::milliseconds cover_check = tuning::cloud_cover_check;
};

/// The lane's links, as its summary to the cloud tells them.
struct peer_count {
    std::size_t up = 0, configured = 0;
};

class uploader {
public:
    /// Does not start anything. `store` must outlive the uploader. Throws std::runtime_error
    /// when the TLS context cannot be set up (e.g. SUPABASE_CA_FILE unreadable).
    uploader(boost::asio::io_context& ioc, outbox::store& store, const conf::config& cfg);
    /// Same, with explicit limits (tests).
    uploader(boost::asio::io_context& ioc, outbox::store& store, const conf::config& cfg,
             limits lim);
    /// Same, given the process's outbox adapter (agent/node.cpp): every outbox call goes
    /// through an adapter over `db.sync()` whose completions run on the uploader's strand.
    uploader(boost::asio::io_context& ioc, outbox::async_store& db, const conf::config& cfg,
             limits lim = {});
    ~uploader();
    uploader(const uploader&) = delete;
    uploader& operator=(const uploader&) = delete;

    /// Starts the upload loop (no-op when the cloud is off). Thread-safe: posts to the strand.
    void start();
    /// Stops: cancels the timer and any request in flight (its batch stays peer_ack and is sent
    /// again later; the cloud answers `duplicate` if it had committed). `done` runs on the
    /// strand once nothing is in flight. Thread-safe.
    void stop(std::function<void()> done);

    /// New messages may be ready: upload as soon as possible unless backing off. Thread-safe.
    void notify();
    /// Upload now, even while backing off (POST /v1/sync). Thread-safe.
    void sync_now();
    /// The configuration changed (a live reload, conf/reload.hpp): the uploader takes `cfg`
    /// (a copy, like the one it was built with; only live keys differ), the clients the new
    /// SUPABASE_SERVICE_KEY for their next requests (a new key also ends a backoff:
    /// the old one may be what the cloud refused), and the loop polls once at once so
    /// a new CLOUD_SYNC_INTERVAL_MS / CLOUD_BATCH_SIZE / CLOUD_HEARTBEAT_MS applies from there
    /// (a retry timer already running keeps its time; SYNC_BACKOFF_* apply from the next
    /// failure). Thread-safe.
    void reconfigure(conf::config cfg);
    void pause();  ///< Thread-safe.
    void resume(); ///< Thread-safe.

    /// The origins this lane uploads for (replica takeover, issue 9 item 4): called on the
    /// uploader's strand before each round. When the batch has room after the own messages,
    /// replicas of those origins (outbox `next_replicas_for_cloud`) fill it, sent with
    /// `terminalId` = their origin and `uploadedBy` = this lane. Unset or empty = own only.
    /// Wakes the uploader like notify(). Between rounds it is asked again every
    /// `limits::cover_check` (1 s), and a changed answer starts a round at once (unless backing
    /// off); notify() makes that immediate.
    /// Thread-safe; `origins` itself must be safe to call from the uploader's strand.
    void set_cover(std::function<std::vector<std::string>()> origins);

    /// Peers up and configured, for the lane summary every request carries (docs/cloud.md
    /// "Lane health"); called on the uploader's strand. Unset: 0 up of PEER_TERMINALS.
    void set_peers(std::function<peer_count()> peers);

    /// Asks the cloud for the highest seq it holds of this lane (docs/cloud.md "Highest seq")
    /// on a connection of its own: `done(error, seq)`, error empty when the cloud told. Runs
    /// `done` on the uploader's strand, once; stop() cancels the request ("cancelled").
    /// Thread-safe.
    void highest_seq(std::function<void(std::string error, std::uint64_t seq)> done);

    /// Thread-safe snapshot.
    status get_status() const;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace lanesync::cloud
