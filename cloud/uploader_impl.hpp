#pragma once
/// The uploader's state and steps, shared by its two source files. Private to cloud/.
///
/// - uploader.cpp: construction, control (start/stop/notify/sync_now/pause/resume), the loop
///   (`run` → `step`: wait until due and a round may start, read a batch, start its round),
///   the rounds in flight, the public face.
/// - upload_batch.cpp: one round (`upload`): encode, cut to the byte cap, send each piece,
///   and carry out what `decide()` (policy.hpp) says; the outbox writes and the bookkeeping.
///
/// Up to limits::requests_in_flight rounds run at once (pacing.hpp says which may), each with
/// its own connection; the ids of a running round are left out of the next reads until its
/// answers are committed.
///
/// Everything runs on `strand_`; only `status_` is read from other threads (under its mutex).
/// The outbox is reached only through `db_` (outbox/async.hpp), whose completions run on
/// `strand_`.

#include "base/metrics.hpp"
#include "cloud/http_client.hpp"
#include "cloud/pacing.hpp"
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
#include <set>

namespace lanesync::cloud {

/// One message of a batch, encoded.
struct piece {
    std::string id;
    std::uint64_t seq = 0;
    std::string json;
    std::string origin = {}; ///< empty: own; else a replica of that origin (covered upload)
};
using batch = std::vector<piece>;

/// One upload round in flight: a batch read from the outbox, sent in one request or more one
/// after the other (a split, a byte cap), on a connection of its own.
struct round_state {
    std::size_t slot = 0; ///< index in clients_ / slots_
    http_client* client = nullptr;
    std::size_t changed = 0; ///< outbox rows its answers changed
    std::uint64_t epoch = 0; ///< failure_epoch_ when it started
};

struct uploader::impl : std::enable_shared_from_this<impl> {
    using clock_type = std::chrono::steady_clock;

    impl(boost::asio::io_context& ioc, outbox::store& store, const conf::config& cfg, limits lim);

    // Control and the loop (uploader.cpp). Everything below runs on strand_.
    void on_start();
    void on_stop(std::function<void()> done);
    void on_notify();
    void on_sync_now();
    void on_pause();
    void on_reconfigure(conf::config cfg);
    void on_resume();
    void on_set_cover(std::function<std::vector<std::string>()> origins);
    bool heartbeat_due(clock_type::time_point now) const;
    void on_highest_seq(std::function<void(std::string, std::uint64_t)> done);
    boost::asio::awaitable<void> run(std::shared_ptr<impl> self);
    boost::asio::awaitable<void> step();
    boost::asio::awaitable<std::vector<outbox::record>> read_round();
    std::size_t rounds_running() const;
    bool room() const;
    void start_round(std::vector<outbox::record> recs, priority_span span);
    boost::asio::awaitable<bool> run_round(std::shared_ptr<impl> self,
                                           std::vector<outbox::record> recs, std::size_t slot);
    void end_round(std::size_t slot, const std::vector<std::string>& ids, bool go_on,
                   std::exception_ptr e);
    std::vector<std::string> ask_cover(clock_type::time_point now);
    bool due(clock_type::time_point now) const;
    clock_type::time_point wake_at(clock_type::time_point now) const;
    void finish_stop();
    void finish_stop_if_idle();

    // One batch (upload_batch.cpp). The bool results: true = go on, false = stop this turn.
    boost::asio::awaitable<bool> upload(round_state& r, std::vector<outbox::record> recs);
    batch encode(const std::vector<outbox::record>& recs, batch& unencodable) const;
    batch take_first(batch& all) const;
    boost::asio::awaitable<bool> send(round_state& r, batch b, std::deque<batch>& todo);
    boost::asio::awaitable<http_result> post(round_state& r, std::string body);
    boost::asio::awaitable<std::string> lane_json();
    boost::asio::awaitable<bool> heartbeat(round_state& r);
    boost::asio::awaitable<bool> carry_out(round_state& r, decision d, batch b,
                                           std::deque<batch>& todo, std::int64_t ms);
    boost::asio::awaitable<bool> record_answer(round_state& r, decision d, const batch& b,
                                               std::int64_t ms);
    void split(const decision& d, batch b, std::deque<batch>& todo);
    boost::asio::awaitable<bool> reject(round_state& r, const batch& b, const std::string& reason);
    boost::asio::awaitable<outbox::cloud_outcome> apply(round_state& r,
                                                        std::vector<outbox::cloud_result> results);
    void succeeded(const round_state& r, const batch& b, int http_status, std::int64_t ms,
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
    /// One connection per round that may be in flight (limits::requests_in_flight).
    std::vector<std::unique_ptr<http_client>> clients_;
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
    std::string key_; ///< the key the clients send (a live reload changes cfg_'s first)
    clock_type::time_point next_poll_{}; ///< idle poll
    std::uint32_t failures_ = 0;         ///< consecutive transient failures
    std::size_t byte_cap_ = 0;           ///< request body cap; lowered after a 413
    /// Per connection: the span of the round using it, empty while free.
    std::vector<std::optional<priority_span>> slots_;
    std::set<std::string, std::less<>> in_flight_ids_; ///< read by a running round: not again
    bool blocked_ = false;            ///< the batch read last must wait for the running rounds
    std::uint64_t failure_epoch_ = 0; ///< grows with every failure (see succeeded())
    std::size_t requests_out_ = 0;    ///< requests sent and not answered
    answer_times times_;              ///< for the adaptive request timeout
    std::vector<std::function<void()>> stop_waiters_;
    std::vector<std::weak_ptr<http_client>> queries_;    ///< highest-seq requests out (on_stop)
    std::function<std::vector<std::string>()> cover_;    ///< origins uploaded for (set_cover)
    std::vector<std::string> last_cover_;                ///< covered_origins at the last ask
    clock_type::time_point next_cover_check_{};          ///< ask cover_ again from then on
    std::function<peer_count()> peers_;                  ///< peers up / configured (set_peers)
    std::optional<clock_type::time_point> last_request_; ///< the last upload or heartbeat sent
    bool send_lane_ = true; ///< requests carry the lane summary (off once the cloud refused it)
    std::atomic<bool> detached_{false}; ///< the uploader object is gone: touch no store

    mutable std::mutex status_mutex_;
    status status_;

    std::map<std::string, metrics::counter*, std::less<>> requests_;
    metrics::counter* retries_ = nullptr;
    metrics::counter* heartbeats_ok_ = nullptr;
    metrics::counter* heartbeats_failed_ = nullptr;
    metrics::counter* acked_ = nullptr;
    metrics::counter* failed_ = nullptr;
    metrics::gauge* backoff_ = nullptr;
    metrics::histogram* latency_ = nullptr;
    /// lanesync_cloud_covered_messages_total{origin}, registered on first use per origin.
    std::map<std::string, metrics::counter*, std::less<>> covered_;
};

} // namespace lanesync::cloud
