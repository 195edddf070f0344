// The uploader's control and loop: construction, start/stop/notify/sync_now/pause/resume,
// and the loop that waits until due and reads a batch. One batch is upload_batch.cpp; the
// rules for an answer are policy.cpp.

#include "base/log.hpp"
#include "base/text.hpp"
#include "base/tls.hpp"
#include "cloud/uploader_impl.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace lanesync::cloud {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using clock_type = std::chrono::steady_clock;

namespace {

/// "L3,L4" ("-" when empty), for log lines.
std::string joined(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v)
        out += (out.empty() ? "" : ",") + s;
    return out.empty() ? "-" : out;
}

/// One GET of the highest-seq query (parameters by value: the frame owns them).
net::awaitable<wire::highest_seq_answer> ask_highest_seq(std::shared_ptr<http_client> client,
                                                         std::string target, std::string store,
                                                         std::string terminal) {
    auto op = client->send(std::string("GET"), std::move(target));
    http_result r = co_await std::move(op);
    co_return wire::read_highest_seq(r, store, terminal);
}

} // namespace

// ---- construction ------------------------------------------------------------------------------

uploader::impl::impl(net::io_context& ioc, outbox::store& store, const conf::config& cfg,
                     limits lim)
    : cfg_(cfg), lim_(lim), strand_(net::make_strand(ioc)), wake_(strand_), db_(strand_, store) {
    if (!cfg_.supabase_service_key.empty())
        log::add_secret(cfg_.supabase_service_key);
    key_ = cfg_.supabase_service_key;
    enabled_ = cfg_.cloud_enabled();
    include_pending_ = cfg_.peers.empty();
    byte_cap_ = std::max<std::size_t>(lim_.max_request_bytes, 1);
    if (enabled_) {
        std::string why;
        auto url = conf::cloud_url_of(cfg_, why);
        if (!url)
            throw std::runtime_error("SUPABASE_URL: " + why);
        ep_ = wire::make_endpoint(*url, cfg_.supabase_function);
        if (cfg_.supabase_service_key.empty())
            throw std::runtime_error("SUPABASE_SERVICE_KEY is required when SUPABASE_URL is set");
        if (ep_->tls) {
            tls_ = make_cloud_tls(cfg_.supabase_ca_file);
        } else {
            if (!cfg_.supabase_ca_file.empty())
                log::warn("cloud.tls.ca_file_unused", {{"reason", "SUPABASE_URL is http://"}});
            if (!text::is_loopback_host(ep_->host))
                log::warn("cloud.plaintext", {{"url", ep_->origin()},
                                              {"reason", "the service key is sent unencrypted"}});
        }
        for (std::size_t i = 0; i < std::max<std::size_t>(lim_.requests_in_flight, 1); ++i)
            clients_.push_back(
                std::make_unique<http_client>(strand_, *ep_, tls_.get(), cfg_.supabase_service_key,
                                              lim_.request_timeout, lim_.max_response_bytes));
        slots_.resize(clients_.size());
    }
    status_.enabled = enabled_;

    auto& reg = metrics::global();
    for (const char* o : {"ok", "http_error", "network", "timeout", "tls", "bad_response",
                          "too_large", "rejected_batch"})
        requests_[o] =
            &reg.get_counter("lanesync_upload_requests_total", "Cloud upload requests by outcome.",
                             std::string("outcome=\"") + o + "\"");
    retries_ = &reg.get_counter("lanesync_upload_retries_total",
                                "Cloud upload requests sent after a failed one.");
    for (auto [c, outcome] : {std::pair{&heartbeats_ok_, "ok"}, {&heartbeats_failed_, "failed"}})
        *c = &reg.get_counter("lanesync_cloud_heartbeats_total",
                              "Heartbeats (the lane summary alone) sent while idle, by outcome.",
                              std::string("outcome=\"") + outcome + "\"");
    // Both count what the outbox changed: own messages and covered replicas (takeover).
    acked_ = &reg.get_counter("lanesync_cloud_acked_total",
                              "Messages the cloud confirmed (stored or duplicate): own ones and "
                              "replicas uploaded on their origin's behalf.");
    failed_ = &reg.get_counter("lanesync_cloud_failed_total",
                               "Messages the cloud rejected (now failed): own ones and covered "
                               "replicas.");
    backoff_ = &reg.get_gauge("lanesync_cloud_backoff_seconds",
                              "Current cloud retry delay; 0 when not backing off.");
    latency_ = &reg.get_histogram("lanesync_peer_ack_to_cloud_ack_seconds",
                                  "Time from peer_ack (or publish, single lane) to cloud_ack.");
}

// ---- control (strand) ----------------------------------------------------------------------

void uploader::impl::on_start() {
    if (!enabled_) {
        log::info("cloud.disabled",
                  {{"reason", "SUPABASE_URL is empty; messages wait at peer_ack"}});
        return;
    }
    if (started_ || stopping_)
        return;
    started_ = running_ = true;
    log::info("cloud.started", {{"url", ep_->origin() + ep_->target},
                                {"batch_size", std::to_string(cfg_.cloud_batch_size)},
                                {"uploads", include_pending_ ? "pending+peer_ack" : "peer_ack"}});
    auto self = shared_from_this();
    net::co_spawn(strand_, run(self), net::bind_executor(strand_, [self](std::exception_ptr e) {
                      self->running_ = false;
                      if (e)
                          log::error("cloud.uploader.crashed", {{"error", text::what(e)}});
                      log::info("cloud.stopped");
                      self->finish_stop_if_idle();
                  }));
}

void uploader::impl::on_stop(std::function<void()> done) {
    if (done)
        stop_waiters_.push_back(std::move(done));
    stopping_ = true;
    wake_.cancel();
    for (auto& c : clients_)
        c->cancel();
    for (auto& q : queries_)
        if (auto c = q.lock())
            c->cancel();
    queries_.clear();
    finish_stop_if_idle();
}

/// Stopped once the loop has ended and no round is running any more.
void uploader::impl::finish_stop_if_idle() {
    if (stopping_ && !running_ && rounds_running() == 0)
        finish_stop();
}

void uploader::impl::finish_stop() {
    auto waiters = std::move(stop_waiters_);
    stop_waiters_.clear();
    for (auto& w : waiters)
        w();
}

void uploader::impl::on_highest_seq(std::function<void(std::string, std::uint64_t)> done) {
    if (!enabled_)
        return done("the cloud is off (SUPABASE_URL is empty)", 0);
    if (stopping_)
        return done("cancelled", 0);
    // A connection of its own: the upload rounds keep theirs.
    auto client = std::make_shared<http_client>(
        strand_, *ep_, tls_.get(), cfg_.supabase_service_key,
        std::min<std::chrono::milliseconds>(lim_.request_timeout, tuning::cloud_query_timeout),
        lim_.max_response_bytes);
    std::erase_if(queries_, [](const auto& q) { return q.expired(); });
    queries_.push_back(client);
    auto target = wire::highest_seq_target(*ep_, cfg_.store_id, cfg_.terminal_id);
    net::co_spawn(
        strand_, ask_highest_seq(client, std::move(target), cfg_.store_id, cfg_.terminal_id),
        net::bind_executor(strand_, [client, done = std::move(done)](
                                        std::exception_ptr e, wire::highest_seq_answer a) mutable {
            if (e)
                return done(text::what(e), 0);
            done(a.seq ? std::string() : a.error, a.seq.value_or(0));
        }));
}

void uploader::impl::on_notify() {
    work_hint_ = true;
    // While backing off the retry timer decides; a new local write does not cut it short.
    if (clock_type::now() >= next_attempt_)
        wake_.cancel();
}

void uploader::impl::on_sync_now() {
    work_hint_ = true;
    next_attempt_ = {};
    edit_status([](status& s) { s.next_attempt_at_ms.reset(); });
    log::info("cloud.sync_now", {{"paused", paused_ ? "true" : "false"}});
    wake_.cancel();
}

void uploader::impl::on_reconfigure(conf::config cfg) {
    cfg_ = std::move(cfg);
    const bool new_key = cfg_.supabase_service_key != key_;
    if (new_key) {
        log::add_secret(cfg_.supabase_service_key);
        key_ = cfg_.supabase_service_key;
        for (auto& c : clients_)
            c->set_key(key_);
    }
    log::info("cloud.reconfigured", {{"batch_size", std::to_string(cfg_.cloud_batch_size)},
                                     {"interval_ms", std::to_string(cfg_.cloud_interval.count())},
                                     {"new_key", new_key ? "true" : "false"}});
    next_poll_ = {};
    if (new_key) // the old key may be what the cloud refused: try the new one at once
        return on_sync_now();
    on_notify();
}

void uploader::impl::on_pause() {
    if (!paused_)
        log::info("cloud.paused");
    paused_ = true;
    edit_status([](status& s) { s.paused = true; });
}

void uploader::impl::on_resume() {
    if (paused_)
        log::info("cloud.resumed");
    paused_ = false;
    work_hint_ = true;
    edit_status([](status& s) { s.paused = false; });
    wake_.cancel();
}

void uploader::impl::on_set_cover(std::function<std::vector<std::string>()> origins) {
    cover_ = std::move(origins);
    on_notify();
}

// ---- the loop (strand) -----------------------------------------------------------------------

bool uploader::impl::due(clock_type::time_point now) const {
    return !paused_ && now >= next_attempt_ && (work_hint_ || now >= next_poll_);
}

clock_type::time_point uploader::impl::wake_at(clock_type::time_point now) const {
    if (paused_)
        return clock_type::time_point::max();
    if (now < next_attempt_)
        return next_attempt_; // backing off: a changed cover set waits like everything else
    return cover_ ? std::min(next_poll_, next_cover_check_) : next_poll_;
}

/// Asks set_cover()'s function which origins this lane covers now (on the strand). A change
/// is logged once and starts a round at once.
std::vector<std::string> uploader::impl::ask_cover(clock_type::time_point now) {
    next_cover_check_ = now + lim_.cover_check;
    auto origins =
        covered_origins(cover_ ? cover_() : std::vector<std::string>{}, cfg_.terminal_id);
    if (origins != last_cover_) {
        log::info("cloud.cover", {{"origins", joined(origins)}, {"before", joined(last_cover_)}});
        last_cover_ = origins;
        work_hint_ = true; // replicas of a newly covered origin may be waiting
    }
    return origins;
}

net::awaitable<void> uploader::impl::run(std::shared_ptr<impl> self) {
    (void)self; // keeps the impl alive while the loop runs
    while (!stopping_) {
        std::string error;
        try {
            co_await step();
        } catch (const std::exception& e) {
            // An outbox read failure (disk, corruption) or a bug: never escapes the loop.
            error = e.what();
        }
        if (!error.empty() && !stopping_) {
            log::error("cloud.upload.error", {{"error", error}});
            failed({}, 0, "outbox: " + error, 0, {});
        }
    }
}

/// One turn: wait until due and a round may start, then read a batch and start its round.
net::awaitable<void> uploader::impl::step() {
    if (detached_) { // the uploader object is gone: call nothing of its owner's (cover_)
        stopping_ = true;
        co_return;
    }
    auto now = clock_type::now();
    if (cover_ && !paused_ && now >= next_cover_check_ && now >= next_attempt_)
        ask_cover(now);
    if (!due(now) || !room()) {
        // Sleep until the retry time or the idle poll; notify/sync_now/resume/stop cut it short,
        // and so does the end of a round (end_round) when every connection is busy.
        wake_.expires_at(room() ? wake_at(now) : clock_type::time_point::max());
        co_await wake_.async_wait(as_tuple_awaitable);
        co_return;
    }
    work_hint_ = false;
    const auto epoch = failure_epoch_; // a failure during the read is after this round began
    auto reading = read_round();
    auto recs = co_await std::move(reading);
    if (detached_) { // the uploader was destroyed during the read
        stopping_ = true;
        co_return;
    }
    next_poll_ = now + cfg_.cloud_interval; // every read counts as a poll
    if (stopping_)
        co_return;
    if (recs.empty()) {
        // Idle: the lane summary alone, every CLOUD_HEARTBEAT_MS, so head office sees the lane.
        // Its span is below every level: any batch may start beside it.
        if (heartbeat_due(clock_type::now()) && epoch == failure_epoch_)
            start_round({}, priority_span{UINT8_MAX, UINT8_MAX});
        co_return;
    }
    if (epoch != failure_epoch_ || paused_ || clock_type::now() < next_attempt_ || !room()) {
        // A running round failed (or the lane paused) while this batch was read: it waits for
        // that backoff like everything else and is read again then.
        work_hint_ = true;
        co_return;
    }
    auto span = span_of(recs);
    std::vector<priority_span> running;
    for (const auto& s : slots_)
        if (s)
            running.push_back(*s);
    if (!may_start_beside(running, span)) {
        // A lower priority than a round in flight: read again once the running rounds ended.
        blocked_ = true;
        work_hint_ = true;
        co_return;
    }
    // A full batch: more may be ready, read the next one while this round is in flight.
    if (recs.size() >= cfg_.cloud_batch_size)
        work_hint_ = true;
    start_round(std::move(recs), span);
}

bool uploader::impl::heartbeat_due(clock_type::time_point now) const {
    return cfg_.cloud_heartbeat.count() > 0 && send_lane_ && !paused_ && !stopping_ &&
           now >= next_attempt_ &&
           (!last_request_ || now - *last_request_ >= cfg_.cloud_heartbeat) &&
           rounds_running() == 0;
}

std::size_t uploader::impl::rounds_running() const {
    return static_cast<std::size_t>(
        std::count_if(slots_.begin(), slots_.end(), [](const auto& s) { return s.has_value(); }));
}

/// May the loop read a batch for a new round now?
bool uploader::impl::room() const {
    return !blocked_ &&
           rounds_running() < std::min(slots_.size(), rounds_allowed(slots_.size(), failures_));
}

/// A round of its own (co_spawn on the strand) on a free connection; its ids are left out of
/// the next reads until it ends.
void uploader::impl::start_round(std::vector<outbox::record> recs, priority_span span) {
    std::size_t slot = 0;
    while (slots_[slot])
        ++slot;
    slots_[slot] = span;
    std::vector<std::string> ids;
    for (const auto& r : recs)
        ids.push_back(r.msg.id);
    in_flight_ids_.insert(ids.begin(), ids.end());
    auto self = shared_from_this();
    net::co_spawn(strand_, run_round(self, std::move(recs), slot),
                  net::bind_executor(strand_, [self, slot, ids = std::move(ids)](
                                                  std::exception_ptr e, bool go_on) {
                      self->end_round(slot, ids, go_on, e);
                  }));
}

net::awaitable<bool> uploader::impl::run_round(std::shared_ptr<impl> self,
                                               std::vector<outbox::record> recs, std::size_t slot) {
    (void)self; // keeps the impl alive while the round runs
    round_state r{slot, clients_[slot].get(), 0, failure_epoch_};
    auto op = upload(r, std::move(recs));
    co_return co_await std::move(op);
}

/// A round ended: free its connection and ids, and let the loop look again.
void uploader::impl::end_round(std::size_t slot, const std::vector<std::string>& ids, bool go_on,
                               std::exception_ptr e) {
    slots_[slot].reset();
    for (const auto& id : ids)
        in_flight_ids_.erase(id);
    blocked_ = false;
    if (e && !stopping_) {
        // An outbox failure (disk, corruption) or a bug: shown, retried after backoff.
        auto error = text::what(e);
        log::error("cloud.upload.error", {{"error", error}});
        failed({}, 0, "outbox: " + error, 0, {});
    } else if (go_on) {
        // After a full success more may be ready (a batch cut by size, or new writes).
        work_hint_ = true;
    }
    wake_.cancel();
    finish_stop_if_idle();
}

/// This round's batch: the most urgent of the own messages and the replicas of the covered
/// origins (compose_round, policy.hpp). Read on the outbox reader thread, resumed on the
/// strand; a read failure is rethrown here (read() completes with its exception_ptr) and shown
/// by run(). cover() runs here, on the strand, once per round.
net::awaitable<std::vector<outbox::record>> uploader::impl::read_round() {
    auto origins = ask_cover(clock_type::now());
    // The ids of running rounds are still ready in the outbox: read past them.
    auto reading = db_.read(
        [limit = cfg_.cloud_batch_size, pending = include_pending_, origins = std::move(origins),
         skip = in_flight_ids_](outbox::store& s) {
            auto unsent = [&](std::vector<outbox::record> v, std::size_t n) {
                std::erase_if(v, [&](const outbox::record& r) { return skip.contains(r.msg.id); });
                if (v.size() > n)
                    v.resize(n);
                return v;
            };
            auto own = unsent(s.next_for_cloud(limit + skip.size(), pending), limit);
            // A full batch of critical own messages leaves no room for any replica.
            if (origins.empty() ||
                (own.size() >= limit && own.back().msg.prio == protocol::priority::critical))
                return own;
            auto replicas = unsent(s.next_replicas_for_cloud(origins, limit + skip.size()), limit);
            return compose_round(std::move(own), std::move(replicas), limit);
        },
        net::use_awaitable);
    co_return co_await std::move(reading);
}

// ---- public face -----------------------------------------------------------------------------

uploader::uploader(net::io_context& ioc, outbox::store& store, const conf::config& cfg)
    : uploader(ioc, store, cfg, limits{}) {}

uploader::uploader(net::io_context& ioc, outbox::store& store, const conf::config& cfg, limits lim)
    : impl_(std::make_shared<impl>(ioc, store, cfg, lim)) {}

uploader::uploader(net::io_context& ioc, outbox::async_store& db, const conf::config& cfg,
                   limits lim)
    : uploader(ioc, db.sync(), cfg, lim) {}

uploader::~uploader() {
    // The loop may still be running if stop() was not awaited: make it touch no store from now
    // on, and wind it down.
    impl_->detached_ = true;
    net::post(impl_->strand_, [i = impl_] { i->on_stop(nullptr); });
}

void uploader::start() {
    net::post(impl_->strand_, [i = impl_] { i->on_start(); });
}

void uploader::stop(std::function<void()> done) {
    net::post(impl_->strand_,
              [i = impl_, done = std::move(done)]() mutable { i->on_stop(std::move(done)); });
}

void uploader::notify() {
    net::post(impl_->strand_, [i = impl_] { i->on_notify(); });
}

void uploader::sync_now() {
    net::post(impl_->strand_, [i = impl_] { i->on_sync_now(); });
}

void uploader::reconfigure(conf::config cfg) {
    net::post(impl_->strand_,
              [i = impl_, c = std::move(cfg)]() mutable { i->on_reconfigure(std::move(c)); });
}

void uploader::pause() {
    net::post(impl_->strand_, [i = impl_] { i->on_pause(); });
}

void uploader::resume() {
    net::post(impl_->strand_, [i = impl_] { i->on_resume(); });
}

void uploader::set_cover(std::function<std::vector<std::string>()> origins) {
    net::post(impl_->strand_,
              [i = impl_, o = std::move(origins)]() mutable { i->on_set_cover(std::move(o)); });
}

void uploader::set_peers(std::function<peer_count()> peers) {
    net::post(impl_->strand_,
              [i = impl_, p = std::move(peers)]() mutable { i->peers_ = std::move(p); });
}

void uploader::highest_seq(std::function<void(std::string, std::uint64_t)> done) {
    net::post(impl_->strand_,
              [i = impl_, d = std::move(done)]() mutable { i->on_highest_seq(std::move(d)); });
}

status uploader::get_status() const {
    std::lock_guard lock(impl_->status_mutex_);
    return impl_->status_;
}

} // namespace lanesync::cloud
