// The cloud puller's mechanism (cloud/puller.hpp): a loop on a strand that waits until due,
// sends the cursors, and applies each page of the answer through the outbox. What to send and
// when to pull next are cloud/pull_policy.cpp; reading the answer is cloud/pull_wire.cpp.

#include "cloud/puller.hpp"

#include "base/backoff.hpp"
#include "base/log.hpp"
#include "base/metrics.hpp"
#include "base/text.hpp"
#include "base/tls.hpp"
#include "cloud/http_client.hpp"
#include "cloud/pull_policy.hpp"
#include "cloud/pull_wire.hpp"
#include "cloud/wire.hpp"
#include "outbox/async.hpp"
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

#include <map>
#include <mutex>
#include <set>

namespace lanesync::cloud {

namespace net = boost::asio;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr const char* function_name = "sync-pull";

} // namespace

struct puller::impl : std::enable_shared_from_this<impl> {
    impl(net::io_context& ioc, outbox::store& store, const conf::config& cfg, pull_limits lim)
        : cfg_(cfg), lim_(lim), strand_(net::make_strand(ioc)), wake_(strand_),
          db_(strand_, store) {
        key_ = cfg_.supabase_service_key;
        enabled_ = cfg_.cloud_enabled() && cfg_.cloud_pull_interval.count() > 0;
        if (enabled_) {
            std::string why;
            auto url = conf::cloud_url_of(cfg_, why);
            if (!url)
                throw std::runtime_error("SUPABASE_URL: " + why);
            ep_ = wire::make_endpoint(*url, function_name);
            if (ep_->tls)
                tls_ = make_cloud_tls(cfg_.supabase_ca_file);
            client_ =
                std::make_unique<http_client>(strand_, *ep_, tls_.get(), cfg_.supabase_service_key,
                                              lim_.request_timeout, lim_.max_response_bytes);
            status_.state = "idle";
        }
        status_.enabled = enabled_;
        auto& reg = metrics::global();
        for (const char* r : {"ok", "http_error", "network", "timeout", "tls", "bad_response",
                              "malformed", "apply_failed"})
            requests_[r] = &reg.get_counter("lanesync_pull_requests_total",
                                            "Cloud pull (sync-pull) requests by result.",
                                            std::string("result=\"") + r + "\"");
        applied_ = &reg.get_counter("lanesync_pull_changes_applied_total",
                                    "Catalog changes pulled from the cloud and applied.");
    }

    void on_start() {
        if (!enabled_) {
            log::info("cloud.pull.disabled",
                      {{"reason", cfg_.cloud_enabled() ? "CLOUD_PULL_INTERVAL_MS is 0"
                                                       : "SUPABASE_URL is empty"}});
            return;
        }
        if (started_ || stopping_)
            return;
        started_ = running_ = true;
        log::info("cloud.pull.started",
                  {{"url", ep_->origin() + ep_->target},
                   {"interval_ms", std::to_string(cfg_.cloud_pull_interval.count())}});
        auto self = shared_from_this();
        net::co_spawn(strand_, run(self), net::bind_executor(strand_, [self](std::exception_ptr e) {
                          self->running_ = false;
                          if (e)
                              log::error("cloud.pull.crashed", {{"error", text::what(e)}});
                          self->finish_stop();
                      }));
    }

    void on_stop(std::function<void()> done) {
        if (done)
            stop_waiters_.push_back(std::move(done));
        stopping_ = true;
        wake_.cancel();
        if (client_)
            client_->cancel();
        finish_stop();
    }

    void finish_stop() {
        if (!stopping_ || running_)
            return;
        auto waiters = std::move(stop_waiters_);
        stop_waiters_.clear();
        for (auto& w : waiters)
            w();
    }

    void on_reconfigure(conf::config cfg) {
        cfg_ = std::move(cfg);
        const bool new_key = cfg_.supabase_service_key != key_;
        if (new_key) {
            log::add_secret(cfg_.supabase_service_key);
            key_ = cfg_.supabase_service_key;
            if (client_)
                client_->set_key(key_);
        }
        if (enabled_ && (new_key || !failures_)) // a new key also ends a backoff
            on_pull_now();
    }

    void on_pull_now() {
        again_ = true;
        next_ = {};
        edit([](pull_status& s) { s.next_attempt_at_ms.reset(); });
        wake_.cancel();
    }

    net::awaitable<void> run(std::shared_ptr<impl> self) {
        (void)self; // keeps the impl alive while the loop runs
        while (!stopping_) {
            if (clock_type::now() < next_) {
                wake_.expires_at(next_);
                co_await wake_.async_wait(as_tuple_awaitable);
                continue;
            }
            std::string error;
            try {
                co_await pull_once();
            } catch (const std::exception& e) {
                error = e.what(); // an outbox read failure or a bug: never escapes the loop
            }
            if (!error.empty() && !stopping_)
                failed("outbox: " + error, 0, "apply_failed");
        }
    }

    /// One request and the pages of its answer.
    net::awaitable<void> pull_once() {
        again_ = false;
        auto reading = db_.catalog_scopes(net::use_awaitable);
        auto scopes = co_await std::move(reading);
        auto cursors = pull::cursors_for(scopes, restart_, protocol::now_ms());
        auto body = pull::encode_request(cfg_.store_id, cfg_.terminal_id, lim_.limit, cursors);
        edit([](pull_status& s) {
            s.state = "pulling";
            s.last_attempt_at_ms = protocol::now_ms();
        });
        auto posting = client_->post(std::move(body));
        http_result r = co_await std::move(posting);
        auto o = pull::read_result(r);
        if (o.k == pull::outcome::kind::cancelled || stopping_)
            co_return;
        if (o.k != pull::outcome::kind::ok) {
            if (o.k == pull::outcome::kind::bad_request)
                for (auto& s : pull::restart_after_bad_request(cursors))
                    restart_.insert(s);
            failed(o.error, o.http_status, o.label);
            co_return;
        }
        std::size_t applied = 0, skipped = 0;
        for (auto& s : o.value->scopes) {
            const std::string scope = s.page.scope;
            auto applying =
                db_.apply_catalog(std::move(s.page), std::string("cloud"), net::use_awaitable);
            outbox::catalog_outcome out = co_await std::move(applying);
            if (!out.ok) {
                if (out.error.find("no snapshot") != std::string::npos)
                    restart_.insert(scope);
                failed("scope " + scope + ": " + out.error, 200, "apply_failed");
                co_return;
            }
            restart_.erase(scope);
            applied += out.applied + out.tombstoned;
            skipped += out.skipped;
            if (out.applied + out.tombstoned > 0)
                log::info("cloud.pull.applied",
                          {{"scope", scope},
                           {"applied", std::to_string(out.applied)},
                           {"tombstoned", std::to_string(out.tombstoned)},
                           {"through", std::to_string(out.scope.through)},
                           {"head", std::to_string(out.scope.head)},
                           {"snapshot", out.scope.snapshot_active ? "under way" : "no"}});
        }
        count(o.label);
        applied_->inc(applied);
        succeeded(*o.value, applied, skipped);
    }

    void succeeded(const pull::response& resp, std::size_t applied, std::size_t skipped) {
        const bool more = resp.more() || again_;
        auto next = pull::after_success(more, cfg_.cloud_pull_interval);
        failures_ = next.failures;
        next_ = clock_type::now() + next.delay;
        const auto now = protocol::now_ms();
        edit([&](pull_status& s) {
            s.state = "idle";
            s.last_ok_at_ms = now;
            s.last_error.clear();
            s.last_http_status = 200;
            s.consecutive_failures = 0;
            ++s.requests_ok;
            s.pages_applied += resp.scopes.size();
            s.changes_applied += applied;
            s.changes_skipped += skipped;
            s.cloud_head = resp.head;
            s.next_attempt_at_ms = now + next.delay.count();
        });
    }

    void failed(const std::string& error, int http_status, const std::string& label) {
        count(label);
        auto next = pull::after_failure(failures_, cfg_.backoff_base, cfg_.backoff_max,
                                        cfg_.cloud_pull_interval, backoff::random_u64());
        failures_ = next.failures;
        next_ = clock_type::now() + next.delay;
        if (again_)
            next_ = clock_type::now(); // sync-now during the request: once more at once
        log::warn("cloud.pull.failed", {{"error", error},
                                        {"failures", std::to_string(failures_)},
                                        {"retry_in_ms", std::to_string(next.delay.count())}});
        const auto now = protocol::now_ms();
        edit([&](pull_status& s) {
            s.state = "backoff";
            s.last_error = error;
            s.last_http_status = http_status ? std::optional<int>(http_status) : std::nullopt;
            s.consecutive_failures = failures_;
            ++s.requests_failed;
            s.next_attempt_at_ms = now + next.delay.count();
        });
    }

    void count(const std::string& label) {
        auto it = requests_.find(label);
        if (it != requests_.end())
            it->second->inc();
    }

    template <class F> void edit(F&& f) {
        std::lock_guard lock(status_mutex_);
        f(status_);
    }

    conf::config cfg_;
    pull_limits lim_;
    bool enabled_ = false;
    std::optional<wire::endpoint> ep_;
    net::strand<net::io_context::executor_type> strand_;
    std::unique_ptr<net::ssl::context> tls_;
    std::unique_ptr<http_client> client_;
    net::steady_timer wake_;
    outbox::async_store db_;

    bool started_ = false, running_ = false, stopping_ = false;
    bool again_ = false;            ///< pull_now() during a pull: pull once more at once
    clock_type::time_point next_{}; ///< the next pull (past: now)
    std::uint32_t failures_ = 0;    ///< consecutive failures
    std::string key_;               ///< the key the client sends (a reload changes cfg_'s first)
    std::set<std::string> restart_; ///< scopes whose snapshot starts again (through 0)
    std::vector<std::function<void()>> stop_waiters_;

    mutable std::mutex status_mutex_;
    pull_status status_;
    std::map<std::string, metrics::counter*, std::less<>> requests_;
    metrics::counter* applied_ = nullptr;
};

puller::puller(net::io_context& ioc, outbox::async_store& db, const conf::config& cfg,
               pull_limits lim)
    : impl_(std::make_shared<impl>(ioc, db.sync(), cfg, lim)) {}

puller::~puller() {
    net::post(impl_->strand_, [i = impl_] { i->on_stop(nullptr); });
}

void puller::start() {
    net::post(impl_->strand_, [i = impl_] { i->on_start(); });
}

void puller::stop(std::function<void()> done) {
    net::post(impl_->strand_,
              [i = impl_, d = std::move(done)]() mutable { i->on_stop(std::move(d)); });
}

void puller::reconfigure(conf::config cfg) {
    net::post(impl_->strand_,
              [i = impl_, c = std::move(cfg)]() mutable { i->on_reconfigure(std::move(c)); });
}

void puller::pull_now() {
    net::post(impl_->strand_, [i = impl_] { i->on_pull_now(); });
}

pull_status puller::get_status() const {
    std::lock_guard lock(impl_->status_mutex_);
    return impl_->status_;
}

} // namespace lanesync::cloud
