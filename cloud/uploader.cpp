#include "cloud/uploader.hpp"

#include "base/log.hpp"
#include "base/metrics.hpp"
#include "cloud/http_client.hpp"
#include "cloud/wire.hpp"
#include "protocol/message.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <random>

namespace lanesync::cloud {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using clock_type = std::chrono::steady_clock;

// ---- pure rules --------------------------------------------------------------------------------

bool is_transient(int s) {
    if (s == 0)
        return true; // no answer: connect, TLS, timeout, truncated
    if (s >= 500)
        return true; // 500, 502, 503, 504, 546 WORKER_LIMIT ...
    switch (s) {
    case 401: // the key may be rotated back / fixed in the function's secrets
    case 403:
    case 404: // function not deployed yet (retried slowly)
    case 408: // request timeout
    case 425: // too early
    case 429: // rate limited
        return true;
    default:
        break;
    }
    // A redirect means SUPABASE_URL is wrong (we never follow one with the key attached):
    // keep retrying with backoff and show it in status until the operator fixes it.
    if (s >= 300 && s < 400)
        return true;
    // 2xx is not a failure; 400, 409, 413 (split), 422 and other 4xx are answers about the
    // request itself, which sending it again cannot change.
    return false;
}

std::int64_t backoff_delay_ms(std::int64_t base_ms, std::int64_t max_ms, std::uint32_t attempt,
                              std::uint64_t random_value) {
    base_ms = std::max<std::int64_t>(base_ms, 0);
    max_ms = std::max<std::int64_t>(max_ms, 0);
    std::int64_t cap = std::min(base_ms, max_ms);
    // Doubling, saturating at max (no overflow however large `attempt` grows).
    for (std::uint32_t i = 0; i < attempt && cap < max_ms && cap > 0; ++i)
        cap = cap > max_ms / 2 ? max_ms : cap * 2;
    return static_cast<std::int64_t>(random_value % (static_cast<std::uint64_t>(cap) + 1));
}

namespace {

constexpr auto as_tuple_awaitable = net::as_tuple(net::use_awaitable);

/// The status line for an HTTP status the uploader retries: built from the code alone, never
/// from response or request text.
std::string status_error(int status, const std::string& function) {
    auto code = std::to_string(status);
    switch (status) {
    case 401:
    case 403:
        return "cloud rejected the service key (HTTP " + code + ")";
    case 404:
        return "edge function " + function + " not found (HTTP 404): is it deployed?";
    case 408:
        return "cloud request timeout (HTTP 408)";
    case 429:
        return "cloud rate limit (HTTP 429)";
    case 546:
        return "edge function hit its resource limit (HTTP 546 WORKER_LIMIT)";
    default:
        break;
    }
    if (status >= 300 && status < 400)
        return "unexpected redirect (HTTP " + code + "): check SUPABASE_URL";
    if (status >= 500)
        return "cloud server error (HTTP " + code + ")";
    return "unexpected answer (HTTP " + code + ")";
}

/// TLS client context (STYLE TLS checklist): TLS 1.2+, peer verification against the system
/// trust store plus SUPABASE_CA_FILE when set. Hostname verification and SNI are set per
/// connection (http_client.cpp). Verification is never turned off.
std::unique_ptr<ssl::context> make_tls_context(const std::string& ca_file) {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1)
        throw std::runtime_error("cannot require TLS 1.2 or later");
    ctx->set_verify_mode(ssl::verify_peer);
    boost::system::error_code ec;
    ctx->set_default_verify_paths(ec);
    if (ec)
        log::warn("cloud.tls.no_system_store", {{"error", ec.message()}});
    if (!ca_file.empty()) {
        ctx->load_verify_file(ca_file, ec);
        if (ec)
            throw std::runtime_error("SUPABASE_CA_FILE " + ca_file +
                                     ": cannot load CA certificates: " + ec.message());
    }
    return ctx;
}

bool is_loopback(const std::string& host) {
    return host == "localhost" || host.starts_with("127.") || host == "::1";
}

/// Runs an outbox write and resumes the awaiting coroutine on its own executor (the strand):
/// the store calls back on its writer thread. The io_context counts the pending write as
/// work, so run() does not return under it.
template <class Result, class Token>
auto async_outbox(std::function<void(std::function<void(Result)>)> start, Token&& token) {
    return net::async_initiate<Token, void(Result)>(
        [start = std::move(start)](auto handler) mutable {
            auto ex = net::prefer(net::get_associated_executor(handler),
                                  net::execution::outstanding_work.tracked);
            auto h = std::make_shared<decltype(handler)>(std::move(handler));
            std::function<void(Result)> complete = [h, ex](Result r) {
                net::post(ex, [h, r = std::move(r)]() mutable { (*h)(std::move(r)); });
            };
            try {
                start(complete);
            } catch (const std::exception& e) {
                Result r;
                r.ok = false;
                r.error = e.what();
                complete(std::move(r));
            }
        },
        token);
}

} // namespace

// ---- the uploader ------------------------------------------------------------------------------

struct uploader::impl : std::enable_shared_from_this<impl> {
    /// One message of a batch, encoded.
    struct piece {
        std::string id;
        std::uint64_t seq = 0;
        std::string json;
    };
    using batch = std::vector<piece>;

    impl(net::io_context& ioc, outbox::store& store, const conf::config& cfg, limits lim);

    // Everything below runs on strand_.
    void on_start();
    void on_stop(std::function<void()> done);
    void on_notify();
    void on_sync_now();
    void on_pause();
    void on_resume();

    net::awaitable<void> run(std::shared_ptr<impl> self);
    net::awaitable<void> step();
    net::awaitable<bool> upload(std::vector<outbox::record> recs);
    net::awaitable<bool> reject(const batch& b, const std::string& reason);
    net::awaitable<outbox::cloud_outcome> apply(std::vector<outbox::cloud_result> results);
    void succeeded(const batch& b, int http_status, std::int64_t ms,
                   const outbox::cloud_outcome& out);
    void failed(const batch& b, int http_status, std::string error, std::int64_t ms,
                std::string_view outcome);
    bool due(clock_type::time_point now) const;
    clock_type::time_point wake_at(clock_type::time_point now) const;
    void finish_stop();
    void count_request(std::string_view outcome);

    template <class F> void edit_status(F&& f) {
        std::lock_guard lock(status_mutex_);
        f(status_);
    }

    // Fixed after construction.
    outbox::store& store_;
    conf::config cfg_;
    limits lim_;
    bool enabled_ = false;
    bool include_pending_ = false; ///< single-lane store: upload pending messages directly
    std::optional<wire::endpoint> ep_;
    net::strand<net::io_context::executor_type> strand_;
    std::unique_ptr<ssl::context> tls_;
    std::unique_ptr<http_client> client_;
    net::steady_timer wake_;

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
    std::mt19937_64 rng_{std::random_device{}()};
    std::atomic<bool> detached_{false}; ///< the uploader object is gone: touch no store

    mutable std::mutex status_mutex_;
    status status_;

    std::map<std::string, metrics::counter*, std::less<>> requests_;
    metrics::counter* retries_ = nullptr;
    metrics::counter* acked_ = nullptr;
    metrics::counter* failed_ = nullptr;
    metrics::gauge* backoff_ = nullptr;
    metrics::histogram* latency_ = nullptr;
};

uploader::impl::impl(net::io_context& ioc, outbox::store& store, const conf::config& cfg,
                     limits lim)
    : store_(store), cfg_(cfg), lim_(lim), strand_(net::make_strand(ioc)), wake_(strand_) {
    if (!cfg_.supabase_service_key.empty())
        log::add_secret(cfg_.supabase_service_key);
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
            tls_ = make_tls_context(cfg_.supabase_ca_file);
        } else {
            if (!cfg_.supabase_ca_file.empty())
                log::warn("cloud.tls.ca_file_unused", {{"reason", "SUPABASE_URL is http://"}});
            if (!is_loopback(ep_->host))
                log::warn("cloud.plaintext", {{"url", ep_->origin()},
                                              {"reason", "the service key is sent unencrypted"}});
        }
        client_ =
            std::make_unique<http_client>(strand_, *ep_, tls_.get(), cfg_.supabase_service_key,
                                          lim_.request_timeout, lim_.max_response_bytes);
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
    acked_ = &reg.get_counter("lanesync_cloud_acked_total",
                              "Own messages the cloud confirmed (stored or duplicate).");
    failed_ = &reg.get_counter("lanesync_cloud_failed_total",
                               "Own messages the cloud rejected (now failed).");
    backoff_ = &reg.get_gauge("lanesync_cloud_backoff_seconds",
                              "Current cloud retry delay; 0 when not backing off.");
    latency_ = &reg.get_histogram("lanesync_peer_ack_to_cloud_ack_seconds",
                                  "Time from peer_ack (or publish, single lane) to cloud_ack.");
}

void uploader::impl::count_request(std::string_view outcome) {
    if (auto it = requests_.find(outcome); it != requests_.end())
        it->second->inc();
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
                      if (e) {
                          try {
                              std::rethrow_exception(e);
                          } catch (const std::exception& ex) {
                              log::error("cloud.uploader.crashed", {{"error", ex.what()}});
                          } catch (...) {
                              log::error("cloud.uploader.crashed", {{"error", "unknown"}});
                          }
                      }
                      log::info("cloud.stopped");
                      self->finish_stop();
                  }));
}

void uploader::impl::on_stop(std::function<void()> done) {
    if (done)
        stop_waiters_.push_back(std::move(done));
    stopping_ = true;
    wake_.cancel();
    if (client_)
        client_->cancel();
    if (!running_)
        finish_stop();
}

void uploader::impl::finish_stop() {
    auto waiters = std::move(stop_waiters_);
    stop_waiters_.clear();
    for (auto& w : waiters)
        w();
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

// ---- the loop (strand) -----------------------------------------------------------------------

bool uploader::impl::due(clock_type::time_point now) const {
    return !paused_ && now >= next_attempt_ && (work_hint_ || now >= next_poll_);
}

clock_type::time_point uploader::impl::wake_at(clock_type::time_point now) const {
    if (paused_)
        return clock_type::time_point::max();
    return now < next_attempt_ ? next_attempt_ : next_poll_;
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

/// One turn: wait until due, then read a batch and upload it.
net::awaitable<void> uploader::impl::step() {
    auto now = clock_type::now();
    if (!due(now)) {
        // Sleep until the retry time or the idle poll; notify/sync_now/resume/stop cut it short.
        wake_.expires_at(wake_at(now));
        co_await wake_.async_wait(as_tuple_awaitable);
        co_return;
    }
    work_hint_ = false;
    if (detached_) {
        stopping_ = true;
        co_return;
    }
    // Read on the strand: a short indexed read (at most CLOUD_BATCH_SIZE rows) on the store's
    // read connection.
    auto recs = store_.next_for_cloud(cfg_.cloud_batch_size, include_pending_);
    next_poll_ = now + cfg_.cloud_interval; // every read counts as a poll
    if (recs.empty())
        co_return;
    // After a full success more may be ready (a batch cut by size, or new writes): go on at once.
    auto op = upload(std::move(recs)); // argument temporaries stay out of the co_await
    if (co_await std::move(op))
        work_hint_ = true;
}

net::awaitable<bool> uploader::impl::upload(std::vector<outbox::record> recs) {
    changed_ = 0;
    // Encode. Data that is not a JSON object can never be accepted: fail it here with the
    // reason instead of letting it spoil every batch it is in.
    batch all, unencodable;
    for (const auto& r : recs) {
        auto json = wire::encode_message(r, cfg_.store_id);
        if (json)
            all.push_back({r.msg.id, r.msg.seq, std::move(*json)});
        else
            unencodable.push_back({r.msg.id, r.msg.seq, {}});
    }
    if (!unencodable.empty()) {
        const std::string reason = "data is not a JSON object";
        if (!co_await reject(unencodable, reason))
            co_return false;
    }
    if (all.empty())
        co_return changed_ > 0;

    // Cut to the byte cap: at least one message; the rest go in the next request.
    batch first;
    std::size_t bytes = 0;
    for (auto& p : all) {
        if (!first.empty() &&
            wire::wrapped_size(bytes + p.json.size(), first.size() + 1) > byte_cap_)
            break;
        bytes += p.json.size();
        first.push_back(std::move(p));
    }

    std::deque<batch> todo;
    todo.push_back(std::move(first));
    while (!todo.empty()) {
        if (stopping_ || paused_) // the rest is read again after resume
            co_return false;
        batch b = std::move(todo.front());
        todo.pop_front();

        std::vector<std::string> parts, ids;
        for (const auto& p : b) {
            parts.push_back(p.json);
            ids.push_back(p.id);
        }
        auto body = wire::wrap_messages(parts);
        auto body_bytes = body.size();

        // Send and wait for the answer (the client owns connect, TLS, timeouts, keep-alive).
        if (failures_ > 0)
            retries_->inc();
        auto started = clock_type::now();
        edit_status([](status& s) {
            s.in_flight = true;
            s.last_attempt_at_ms = protocol::now_ms();
        });
        auto sending = client_->post(std::move(body));
        auto res = co_await std::move(sending);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started)
                      .count();
        edit_status([&](status& s) {
            s.in_flight = false;
            if (res.fail == http_result::failure::none)
                s.last_http_status = res.status;
        });

        if (res.fail == http_result::failure::cancelled ||
            (stopping_ && res.fail != http_result::failure::none)) {
            log::info("cloud.upload.cancelled", {{"batch", std::to_string(b.size())}});
            co_return false;
        }
        if (res.fail != http_result::failure::none) {
            count_request(outcome_label(res.fail));
            failed(b, 0, res.error, ms, outcome_label(res.fail));
            co_return false;
        }

        int st = res.status;
        if (st >= 200 && st < 300) {
            // Apply every well-formed result for an id of this batch, whatever else the
            // answer holds; ids without a usable result stay where they are and are retried.
            auto d = wire::decode_results(res.body, ids);
            outbox::cloud_outcome out;
            out.ok = true;
            if (!d.results.empty()) {
                auto applying = apply(std::move(d.results));
                out = co_await std::move(applying);
                if (!out.ok) {
                    count_request("ok");
                    failed(b, st, "outbox write failed: " + out.error, ms, "ok");
                    co_return false;
                }
            }
            if (!d.clean()) {
                count_request("bad_response");
                batch rest;
                for (const auto& p : b)
                    if (std::find(d.missing.begin(), d.missing.end(), p.id) != d.missing.end())
                        rest.push_back(p);
                log::warn("cloud.response.invalid",
                          {{"status", std::to_string(st)},
                           {"problem", d.problem()},
                           {"applied", std::to_string(out.acked + out.failed)},
                           {"retrying", std::to_string(rest.size())}});
                failed(rest.empty() ? b : rest, st,
                       "unusable answer from the cloud (HTTP " + std::to_string(st) +
                           "): " + d.problem(),
                       ms, "bad_response");
                co_return false;
            }
            count_request("ok");
            succeeded(b, st, ms, out);
            continue;
        }

        if (st == 413 || !is_transient(st)) {
            // An answer about the request itself. Split it to find the message at fault, so
            // one bad message never holds back the ones behind it.
            bool too_large = st == 413;
            count_request(too_large ? "too_large" : "rejected_batch");
            edit_status([](status& s) { ++s.requests_failed; });
            if (b.size() > 1) {
                if (too_large) // remember: later batches start at most this large
                    byte_cap_ = std::min(byte_cap_, std::max<std::size_t>(body_bytes / 2, 1));
                auto half = b.size() / 2;
                batch left(std::make_move_iterator(b.begin()),
                           std::make_move_iterator(b.begin() + static_cast<std::ptrdiff_t>(half)));
                batch right(std::make_move_iterator(b.begin() + static_cast<std::ptrdiff_t>(half)),
                            std::make_move_iterator(b.end()));
                log::warn("cloud.upload.split", {{"status", std::to_string(st)},
                                                 {"batch", std::to_string(b.size())},
                                                 {"bytes", std::to_string(body_bytes)},
                                                 {"first_seq", std::to_string(b.front().seq)},
                                                 {"last_seq", std::to_string(b.back().seq)}});
                todo.push_front(std::move(right));
                todo.push_front(std::move(left));
                continue;
            }
            std::string reason;
            if (too_large) {
                reason = "too large for the cloud";
            } else {
                reason = "cloud rejected the request (HTTP " + std::to_string(st) + ")";
                if (auto text = wire::error_text(res.body); !text.empty())
                    reason += ": " + text;
            }
            if (!co_await reject(b, reason))
                co_return false;
            continue;
        }

        count_request("http_error");
        failed(b, st, status_error(st, cfg_.supabase_function), ms, "http_error");
        co_return false;
    }
    // Go on at once only if the outbox moved: answers that changed nothing (ids the store no
    // longer holds as ready) must not turn the loop into a busy loop.
    if (changed_ == 0)
        log::warn("cloud.outbox.unchanged", {{"reason", "answers applied to no ready message"}});
    co_return changed_ > 0;
}

/// Marks these messages failed in the outbox with `reason` (a permanent answer).
net::awaitable<bool> uploader::impl::reject(const batch& b, const std::string& reason) {
    std::vector<outbox::cloud_result> results;
    for (const auto& p : b)
        results.push_back({p.id, outbox::cloud_result::rejected, log::redact(reason)});
    auto op = apply(std::move(results));
    auto out = co_await std::move(op);
    if (!out.ok) {
        failed(b, 0, "outbox write failed: " + out.error, 0, {});
        co_return false;
    }
    co_return true;
}

/// Records the cloud's answers in the outbox (writer thread) and waits for the commit.
net::awaitable<outbox::cloud_outcome>
uploader::impl::apply(std::vector<outbox::cloud_result> results) {
    for (const auto& r : results)
        if (r.k == outbox::cloud_result::rejected)
            log::warn("cloud.message.rejected", {{"id", r.id}, {"reason", r.error}});
    // Build the operation first and await a named object: GCC 12 mishandles class temporaries
    // (here a lambda owning the results) that live across a co_await suspension, destroying
    // a stale copy after the resume. Keep temporaries out of co_await expressions.
    std::function<void(std::function<void(outbox::cloud_outcome)>)> start =
        [this,
         results = std::move(results)](std::function<void(outbox::cloud_outcome)> done) mutable {
            store_.cloud_acked(std::move(results), std::move(done));
        };
    auto op = async_outbox<outbox::cloud_outcome>(std::move(start), net::use_awaitable);
    auto out = co_await std::move(op);
    if (out.ok) {
        changed_ += out.acked + out.failed;
        acked_->inc(out.acked);
        failed_->inc(out.failed);
        for (auto ms : out.latency_ms)
            latency_->observe(static_cast<double>(ms) / 1000.0);
        edit_status([&](status& s) {
            s.messages_acked += out.acked;
            s.messages_rejected += out.failed;
        });
    } else {
        log::error("cloud.outbox.write_failed", {{"error", out.error}});
    }
    co_return out;
}

void uploader::impl::succeeded(const batch& b, int http_status, std::int64_t ms,
                               const outbox::cloud_outcome& out) {
    failures_ = 0;
    next_attempt_ = {};
    backoff_->set(0);
    edit_status([&](status& s) {
        s.last_success_at_ms = protocol::now_ms();
        s.last_error.clear();
        s.last_http_status = http_status;
        s.next_attempt_at_ms.reset();
        s.current_backoff_ms = 0;
        s.consecutive_failures = 0;
        ++s.requests_ok;
    });
    log::info("cloud.upload.ok", {{"batch", std::to_string(b.size())},
                                  {"first_seq", std::to_string(b.front().seq)},
                                  {"last_seq", std::to_string(b.back().seq)},
                                  {"ms", std::to_string(ms)},
                                  {"acked", std::to_string(out.acked)},
                                  {"rejected", std::to_string(out.failed)},
                                  {"connections", std::to_string(client_->connections_opened())}});
}

void uploader::impl::failed(const batch& b, int http_status, std::string error, std::int64_t ms,
                            std::string_view outcome) {
    ++failures_;
    auto delay = backoff_delay_ms(cfg_.backoff_base.count(), cfg_.backoff_max.count(),
                                  failures_ - 1, rng_());
    if (http_status == 404) // not deployed: no point asking often
        delay = std::max<std::int64_t>(delay, lim_.not_found_retry.count());
    auto now = clock_type::now();
    next_attempt_ = now + std::chrono::milliseconds(delay);
    work_hint_ = true; // retry on the timer, without waiting for a new local write
    backoff_->set(static_cast<double>(delay) / 1000.0);
    error = log::redact(std::move(error));
    bool was_request = !outcome.empty();
    edit_status([&](status& s) {
        s.last_error = error;
        if (http_status)
            s.last_http_status = http_status;
        s.next_attempt_at_ms = protocol::now_ms() + delay;
        s.current_backoff_ms = delay;
        s.consecutive_failures = failures_;
        if (was_request)
            ++s.requests_failed;
    });
    if (!b.empty() && !detached_) {
        std::vector<std::string> ids;
        for (const auto& p : b)
            ids.push_back(p.id);
        try {
            store_.note_attempt(std::move(ids), [](outbox::count_outcome o) {
                if (!o.ok)
                    log::warn("cloud.note_attempt.failed", {{"error", o.error}});
            });
        } catch (const std::exception& e) {
            log::warn("cloud.note_attempt.failed", {{"error", e.what()}});
        }
    }
    log::warn("cloud.upload.failed",
              {{"batch", std::to_string(b.size())},
               {"first_seq", b.empty() ? std::string("-") : std::to_string(b.front().seq)},
               {"last_seq", b.empty() ? std::string("-") : std::to_string(b.back().seq)},
               {"outcome", outcome.empty() ? std::string("outbox") : std::string(outcome)},
               {"status", http_status ? std::to_string(http_status) : std::string("-")},
               {"error", error},
               {"attempt", std::to_string(failures_)},
               {"retry_in_ms", std::to_string(delay)},
               {"ms", std::to_string(ms)}});
}

// ---- public face -----------------------------------------------------------------------------

uploader::uploader(net::io_context& ioc, outbox::store& store, const conf::config& cfg)
    : uploader(ioc, store, cfg, limits{}) {}

uploader::uploader(net::io_context& ioc, outbox::store& store, const conf::config& cfg, limits lim)
    : impl_(std::make_shared<impl>(ioc, store, cfg, lim)) {}

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

void uploader::pause() {
    net::post(impl_->strand_, [i = impl_] { i->on_pause(); });
}

void uploader::resume() {
    net::post(impl_->strand_, [i = impl_] { i->on_resume(); });
}

status uploader::get_status() const {
    std::lock_guard lock(impl_->status_mutex_);
    return impl_->status_;
}

} // namespace lanesync::cloud
