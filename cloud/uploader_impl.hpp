#pragma once
/// The uploader's state and steps, shared by its two source files. Private to cloud/.
///
/// - uploader.cpp: construction, control (start/stop/notify/sync_now/pause/resume), the loop
///   (`run` → `step`: wait until due, read a batch), the public face.
/// - upload_batch.cpp: one batch (`upload`): encode, cut to the byte cap, send each piece,
///   and carry out what `decide()` (policy.hpp) says; the outbox writes and the bookkeeping.
///
/// Everything runs on `strand_`; only `status_` is read from other threads (under its mutex).
/// The outbox is reached only through `db_` (outbox/async.hpp), whose completions run on
/// `strand_`.

#include "base/metrics.hpp"
#include "cloud/http_client.hpp"
#include "cloud/policy.hpp"
#include "cloud/uploader.hpp"
#include "cloud/wire.hpp"
#include "outbox/async.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <mutex>

namespace lanesync::cloud {

/// One message of a batch, encoded.
struct piece {
    std::string id;
    std::uint64_t seq = 0;
    std::string json;
    std::string origin = {}; ///< empty: own; else a replica of that origin (covered upload)
};
using batch = std::vector<piece>;

struct uploader::impl : std::enable_shared_from_this<impl> {
    using clock_type = std::chrono::steady_clock;

    impl(boost::asio::io_context& ioc, outbox::store& store, const conf::config& cfg, limits lim);

    // Control and the loop (uploader.cpp). Everything below runs on strand_.
    void on_start();
    void on_stop(std::function<void()> done);
    void on_notify();
    void on_sync_now();
    void on_pause();
    void on_resume();
    void on_set_cover(std::function<std::vector<std::string>()> origins);
    void on_highest_seq(std::function<void(std::string, std::uint64_t)> done);
    boost::asio::awaitable<void> run(std::shared_ptr<impl> self);
    boost::asio::awaitable<void> step();
    boost::asio::awaitable<std::vector<outbox::record>> read_round();
    std::vector<std::string> ask_cover(clock_type::time_point now);
    bool due(clock_type::time_point now) const;
    clock_type::time_point wake_at(clock_type::time_point now) const;
    void finish_stop();

    // One batch (upload_batch.cpp). The bool results: true = go on, false = stop this turn.
    boost::asio::awaitable<bool> upload(std::vector<outbox::record> recs);
    batch encode(const std::vector<outbox::record>& recs, batch& unencodable) const;
    batch take_first(batch& all) const;
    boost::asio::awaitable<bool> send(batch b, std::deque<batch>& todo);
    boost::asio::awaitable<http_result> post(std::string body);
    boost::asio::awaitable<bool> carry_out(decision d, batch b, std::deque<batch>& todo,
                                           std::int64_t ms);
    boost::asio::awaitable<bool> record_answer(decision d, const batch& b, std::int64_t ms);
    void split(const decision& d, batch b, std::deque<batch>& todo);
    boost::asio::awaitable<bool> reject(const batch& b, const std::string& reason);
    boost::asio::awaitable<outbox::cloud_outcome> apply(std::vector<outbox::cloud_result> results);
    void succeeded(const batch& b, int http_status, std::int64_t ms,
                   const outbox::cloud_outcome& out);
    void failed(const batch& b, int http_status, std::string error, std::int64_t ms,
                std::string_view outcome, std::chrono::milliseconds floor = {});
    void note_attempt(const batch& b);
    void count_covered(const std::vector<outbox::cloud_result>& applied);
    void count_request(std::string_view outcome);

    template <class F> void edit_status(F&& f) {
        std::lock_guard lock(status_mutex_);
        f(status_);
    }

    // Fixed after construction.
    conf::config cfg_;
    limits lim_;
    bool enabled_ = false;
    bool include_pending_ = false; ///< single-lane store: upload pending messages directly
    std::optional<wire::endpoint> ep_;
    boost::asio::strand<boost::asio::io_context::executor_type> strand_;
    std::unique_ptr<boost::asio::ssl::context> tls_;
    std::unique_ptr<http_client> client_;
    boost::asio::steady_timer wake_;
    /// Every outbox call goes through it: reads on the outbox reader thread, writes on its
    /// writer thread, completions back on strand_ (no SQLite call on the io thread).
    outbox::async_store db_;

    // Strand state.
    bool started_ = false;
    bool running_ = false;
    bool stopping_ = false;
    bool paused_ = false;
    bool work_hint_ = true;                 ///< a batch may be ready: look at once
    clock_type::time_point next_attempt_{}; ///< backing off until then (past = not)
    clock_type::time_point next_poll_{};    ///< idle poll
    std::uint32_t failures_ = 0;            ///< consecutive transient failures
    std::size_t byte_cap_ = 0;              ///< request body cap; lowered after a 413
    std::size_t changed_ = 0;               ///< outbox rows changed by the current upload()
    std::vector<std::function<void()>> stop_waiters_;
    std::vector<std::weak_ptr<http_client>> queries_; ///< highest-seq requests out (on_stop)
    std::function<std::vector<std::string>()> cover_; ///< origins uploaded for (set_cover)
    std::vector<std::string> last_cover_;             ///< covered_origins at the last ask
    clock_type::time_point next_cover_check_{};       ///< ask cover_ again from then on
    std::atomic<bool> detached_{false}; ///< the uploader object is gone: touch no store

    mutable std::mutex status_mutex_;
    status status_;

    std::map<std::string, metrics::counter*, std::less<>> requests_;
    metrics::counter* retries_ = nullptr;
    metrics::counter* acked_ = nullptr;
    metrics::counter* failed_ = nullptr;
    metrics::gauge* backoff_ = nullptr;
    metrics::histogram* latency_ = nullptr;
    /// lanesync_cloud_covered_messages_total{origin}, registered on first use per origin.
    std::map<std::string, metrics::counter*, std::less<>> covered_;
};

} // namespace lanesync::cloud
