#include "agent/api_server.hpp"

#include "agent/api_routes.hpp"
#include "agent/api_test_hooks.hpp"
#include "agent/status.hpp"
#include "base/log.hpp"
#include "base/metrics.hpp"
#include "base/tuning.hpp"
#include "outbox/async.hpp"
#include "protocol/message.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <unordered_map>

namespace lanesync::agent {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

namespace {

std::atomic<std::int64_t> request_timeout_override_ms{0};

std::chrono::milliseconds request_timeout() {
    auto ms = request_timeout_override_ms.load();
    if (ms > 0)
        return std::chrono::milliseconds(ms);
    return std::chrono::duration_cast<std::chrono::milliseconds>(tuning::api_request_timeout);
}

/// After an error answer that closes the connection, the client may still be sending a body
/// we will not read; closing with unread data makes the kernel send RST, which can destroy
/// our answer before the client reads it. So we shut down our side and read (and discard)
/// for a short while first (RFC 9112 section 9.6, "lingering close").
constexpr auto linger_time = std::chrono::seconds(2);
constexpr std::size_t linger_max_bytes = 16u << 20;

/// Errors that are the normal end of an API connection, not worth more than a debug line.
bool is_expected_end(const error_code& ec) {
    return ec == net::error::operation_aborted   // we cancelled it: stop(), or our own close
           || ec == http::error::end_of_stream   // the client closed between requests
           || ec == net::error::eof              // the client closed mid-way
           || ec == http::error::partial_message // ... in the middle of a request
           || ec == net::error::connection_reset // the client vanished (killed, RST)
           || ec == net::error::broken_pipe      // ... while we were writing
           || ec == beast::error::timeout; // a slow or idle client, closed by the stream timeout
}

/// A parse error of the request itself (bad method, target, header, chunk ...), as opposed to
/// a transport error or one of the limits handled separately.
bool is_malformed_request(const error_code& ec) {
    return ec.category() == http::make_error_code(http::error::bad_method).category() &&
           ec != http::error::end_of_stream && ec != http::error::partial_message &&
           ec != http::error::body_limit && ec != http::error::header_limit &&
           ec != http::error::buffer_overflow && ec != http::error::need_more;
}

struct api_metrics {
    metrics::counter& accepted = metrics::global().get_counter(
        "lanesync_accepted_total", "Messages accepted (newly stored) through the local API");
    metrics::counter& refused = metrics::global().get_counter(
        "lanesync_api_connections_refused_total",
        "Local API connections closed at accept (too many connections)");
    metrics::histogram& publish_seconds = metrics::global().get_histogram(
        "lanesync_api_publish_seconds",
        "POST /v1/messages from request read to answer, durable commit included");
    std::map<unsigned, metrics::counter*> by_code;

    api_metrics() {
        for (unsigned c : {200u, 201u, 202u, 400u, 404u, 405u, 409u, 413u, 415u, 431u, 500u, 503u})
            by_code[c] = &series(c);
    }
    static metrics::counter& series(unsigned code) {
        return metrics::global().get_counter("lanesync_api_requests_total",
                                             "Local API requests by HTTP status",
                                             "code=\"" + std::to_string(code) + "\"");
    }
    metrics::counter& code(unsigned c) {
        auto it = by_code.find(c); // read-only after construction
        return it != by_code.end() ? *it->second : series(c);
    }
};

api_metrics& am() {
    static api_metrics m;
    return m;
}

} // namespace

class http_session;

/// What the listener and every session share: the dependencies, limits, and the registry of
/// live sessions used by stop(). Thread-safe (a mutex: sessions live on different strands).
class api_shared_state {
public:
    api_shared_state(net::io_context& ioc, api_deps deps)
        : ioc_(ioc), deps_(deps), timeout_(request_timeout()),
          max_message_bytes_(deps.cfg->max_message_bytes),
          // A little room for the envelope around `data`; check_publish() then enforces
          // MAX_MESSAGE_BYTES on the body exactly.
          body_limit_(deps.cfg->max_message_bytes + 4096) {
        if (!deps_.outbox_async) {
            own_async_.emplace(ioc.get_executor(), *deps_.store);
            deps_.outbox_async = &*own_async_;
        }
    }

    const api_deps& deps() const { return deps_; }
    outbox::async_store& outbox() const { return *deps_.outbox_async; }
    std::chrono::milliseconds timeout() const { return timeout_; }
    std::size_t max_message_bytes() const { return max_message_bytes_; }
    std::size_t body_limit() const { return body_limit_; }

    /// Registers a new session; false when stopping or at api_max_connections.
    bool join(const std::shared_ptr<http_session>& s) {
        std::lock_guard lk(mutex_);
        if (stopping_ || sessions_.size() >= tuning::api_max_connections)
            return false;
        sessions_.emplace(s.get(), s);
        return true;
    }

    void leave(const http_session* s) {
        std::unique_lock lk(mutex_);
        if (sessions_.erase(s))
            maybe_done(lk);
    }

    /// Marks the server stopping and returns the live sessions to close. `done` runs (posted)
    /// once the listener is closed and every session has ended.
    std::vector<std::shared_ptr<http_session>> begin_stop(std::function<void()> done) {
        std::lock_guard lk(mutex_);
        stopping_ = true;
        if (done) {
            if (finished_)
                net::post(ioc_, std::move(done));
            else
                done_.push_back(std::move(done));
        }
        std::vector<std::shared_ptr<http_session>> live;
        for (auto& [p, w] : sessions_)
            if (auto s = w.lock())
                live.push_back(std::move(s));
        return live;
    }

    void listener_closed() {
        std::unique_lock lk(mutex_);
        listener_closed_ = true;
        maybe_done(lk);
    }

    bool stopping() const {
        std::lock_guard lk(mutex_);
        return stopping_;
    }

private:
    void maybe_done(std::unique_lock<std::mutex>& lk) {
        if (!stopping_ || !listener_closed_ || !sessions_.empty() || finished_)
            return;
        finished_ = true;
        auto done = std::move(done_);
        done_.clear();
        lk.unlock();
        for (auto& d : done)
            net::post(ioc_, std::move(d));
    }

    net::io_context& ioc_;
    std::optional<outbox::async_store> own_async_; ///< when deps.outbox_async was null
    api_deps deps_;
    const std::chrono::milliseconds timeout_;
    const std::size_t max_message_bytes_;
    const std::size_t body_limit_;

    mutable std::mutex mutex_;
    std::unordered_map<const http_session*, std::weak_ptr<http_session>> sessions_;
    bool stopping_ = false;
    bool listener_closed_ = false;
    bool finished_ = false;
    std::vector<std::function<void()>> done_;
};

/// One local API connection (keep-alive): reads a request, answers it, reads the next.
/// Everything runs on the stream's strand; exactly one write is in flight (requests are
/// handled one at a time, in order).
class http_session : public std::enable_shared_from_this<http_session> {
public:
    http_session(tcp::socket&& socket, std::shared_ptr<api_shared_state> state)
        : stream_(std::move(socket)), state_(std::move(state)),
          buffer_(tuning::api_header_limit + state_->body_limit() + 8192) {}

    ~http_session() { state_->leave(this); }

    /// Thread-safe: dispatches to the session strand.
    void run() {
        net::dispatch(stream_.get_executor(),
                      beast::bind_front_handler(&http_session::do_read, shared_from_this()));
    }

    /// Closes the connection if it is waiting for (or reading) a request; a request being
    /// handled is answered first, with Connection: close. Thread-safe: posts to the strand.
    void stop() {
        net::post(stream_.get_executor(), [self = shared_from_this()] {
            self->stopping_ = true;
            if (self->phase_ == phase::reading || self->phase_ == phase::lingering)
                self->stream_.cancel();
        });
    }

private:
    enum class phase { reading, handling, writing, lingering, closed };

    // Read the next request's header, with the whole request under one deadline.
    void do_read() {
        if (stopping_)
            return do_close();
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(tuning::api_header_limit));
        parser_->body_limit(state_->body_limit());
        phase_ = phase::reading;
        stream_.expires_after(state_->timeout());
        http::async_read_header(
            stream_, buffer_, *parser_,
            beast::bind_front_handler(&http_session::on_read_header, shared_from_this()));
    }

    void on_read_header(error_code ec, std::size_t) {
        if (ec)
            return on_read_error(ec);
        started_ = std::chrono::steady_clock::now();
        {
            auto& head = parser_->get();
            method_ = std::string(head.method_string().substr(0, 16));
            auto target = head.target();
            path_ = std::string(target.substr(0, std::min<std::size_t>(target.size(), 200)));
        }
        if (parser_->is_done())
            return on_read(ec, 0);
        auto& req = parser_->get();
        if (beast::iequals(req[http::field::expect], "100-continue")) {
            // The client waits for this before sending the body (curl does for > 1 KiB).
            continue_.emplace(http::status::continue_, req.version());
            http::async_write(
                stream_, *continue_,
                beast::bind_front_handler(&http_session::on_continue_sent, shared_from_this()));
            return;
        }
        do_read_body();
    }

    void on_continue_sent(error_code ec, std::size_t) {
        if (ec)
            return on_read_error(ec);
        do_read_body();
    }

    // Read the body, still under the deadline set in do_read().
    void do_read_body() {
        http::async_read(stream_, buffer_, *parser_,
                         beast::bind_front_handler(&http_session::on_read, shared_from_this()));
    }

    void on_read(error_code ec, std::size_t) {
        if (ec)
            return on_read_error(ec);
        phase_ = phase::handling;
        try {
            handle();
        } catch (const std::exception& e) {
            // A bug in a handler must cost one request, not the agent.
            log::error("api.handler_failed", {{"path", path_}, {"error", e.what()}});
            send(api::error_response(500, "internal error"), true);
        }
    }

    void on_read_error(const error_code& ec) {
        if (!parser_ || !parser_->is_header_done()) {
            // Nothing usable arrived; the log line of an error answer names no route.
            started_ = std::chrono::steady_clock::now();
            method_ = "-";
            path_ = "-";
        }
        if (ec == http::error::body_limit || ec == http::error::buffer_overflow) {
            return send(api::error_response(413, "body larger than MAX_MESSAGE_BYTES (" +
                                                     std::to_string(state_->max_message_bytes()) +
                                                     ")"),
                        true);
        }
        if (ec == http::error::header_limit)
            return send(api::error_response(431, "request header larger than " +
                                                     std::to_string(tuning::api_header_limit) +
                                                     " bytes"),
                        true);
        if (is_malformed_request(ec))
            return send(api::error_response(400, "malformed HTTP request: " + ec.message()), true);
        if (ec == http::error::end_of_stream)
            return do_close(); // the client closed a keep-alive connection: normal
        if (ec == beast::error::timeout)
            log::debug("api.timeout", {{"after_ms", std::to_string(state_->timeout().count())}});
        else if (!is_expected_end(ec))
            log::debug("api.read_failed", {{"error", ec.message()}});
        phase_ = phase::closed; // the socket closes when the last handler lets go
    }

    /// Routes one complete request.
    void handle() {
        auto& req = parser_->get();
        auto t = api::parse_target(req.target());
        if (!t) {
            path_ = "(malformed)";
            return send(api::error_response(400, "malformed request target"));
        }
        path_ = t->path.size() > 200 ? t->path.substr(0, 200) + "..." : t->path;
        std::optional<std::string_view> host, origin;
        if (auto it = req.find(http::field::host); it != req.end())
            host = it->value();
        if (auto it = req.find(http::field::origin); it != req.end())
            origin = it->value();
        if (auto why = api::foreign_request(host, origin); !why.empty())
            return send(api::error_response(403, why));
        auto m = api::route_request(req.method_string(), t->path);
        switch (m.r) {
        case api::route::publish:
            return start_publish();
        case api::route::list_messages:
            return start_list(*t);
        case api::route::get_message:
            return start_get(m.id);
        case api::route::status:
            return start_status();
        case api::route::metrics:
            return start_metrics();
        case api::route::healthz:
            return start_healthz();
        case api::route::root:
            return send(api::root_page());
        case api::route::sync:
        case api::route::cloud_pause:
        case api::route::cloud_resume:
            return cloud_control(m.r);
        case api::route::wrong_method: {
            auto r = api::error_response(405, "method " + method_ +
                                                  " is not allowed here; allowed: " + m.allow);
            r.allow = m.allow;
            return send(std::move(r));
        }
        case api::route::not_found:
            break;
        }
        send(api::error_response(404, "no such route: " + method_ + " " + path_));
    }

    // ---- routes that read the outbox: the read runs on the outbox reader thread, the answer
    // is sent from its completion, on this session's strand (outbox::async_store).

    /// Runs `read(store&)` on the reader thread, then sends `answer(result)` from here (503
    /// when the read threw), with the CORS headers of route `rt`.
    template <class Read, class Answer> void read_then(api::route rt, Read read, Answer answer) {
        state_->outbox().read(
            std::move(read),
            net::bind_executor(
                stream_.get_executor(), [self = shared_from_this(), rt, answer = std::move(answer)](
                                            std::exception_ptr e, auto result) {
                    self->guarded([&] {
                        auto r = e ? api::storage_failure(e) : answer(std::move(result));
                        self->send(self->with_cors(std::move(r), rt));
                    });
                }));
    }

    /// A completion must cost one request, not the agent (as on_read() does for handle()).
    template <class F> void guarded(F&& f) {
        try {
            f();
        } catch (const std::exception& e) {
            log::error("api.handler_failed", {{"path", path_}, {"error", e.what()}});
            send(api::error_response(500, "internal error"), true);
        }
    }

    // GET /v1/messages/{id}
    void start_get(const std::string& raw_id) {
        auto checked = api::check_message_id(raw_id);
        if (auto* r = std::get_if<api::response>(&checked))
            return send(std::move(*r));
        auto id = std::get<std::string>(std::move(checked));
        read_then(
            api::route::get_message, [id](outbox::store& s) { return s.get(id); },
            [id](std::optional<outbox::record> rec) { return api::message_answer(id, rec); });
    }

    // GET /v1/messages?state=...&limit=...: the count and the records in one read job.
    void start_list(const api::target& t) {
        auto checked = api::check_list(t);
        if (auto* r = std::get_if<api::response>(&checked))
            return send(std::move(*r));
        auto q = std::get<api::list_query>(checked);
        read_then(
            api::route::list_messages,
            [q](outbox::store& s) {
                auto c = s.get_counts();
                std::vector<outbox::record> recs;
                if (q.limit > 0)
                    recs = s.list(q.st, q.limit);
                return std::make_pair(std::move(c), std::move(recs));
            },
            [q](std::pair<outbox::counts, std::vector<outbox::record>> r) {
                return api::list_answer(q, r.first, r.second);
            });
    }

    // GET /v1/status: gossip's and the uploader's status and the outbox counts, read together
    // (gossip's status reads the outbox too).
    void start_status() {
        const auto& deps = state_->deps();
        read_then(
            api::route::status,
            [cfg = deps.cfg, gossip = deps.gossip, uploader = deps.uploader](outbox::store& s) {
                return status_json(*cfg, read_status_inputs(s, gossip, uploader), true,
                                   protocol::now_ms());
            },
            [](nlohmann::json doc) { return api::status_answer(doc); });
    }

    // GET /metrics: the collectors read the outbox, so the rendering runs on the reader thread.
    void start_metrics() {
        state_->outbox().read(
            [](outbox::store&) { return api::metrics_text(); },
            net::bind_executor(stream_.get_executor(), [self = shared_from_this()](
                                                           std::exception_ptr e, api::response r) {
                self->guarded([&] {
                    if (e)
                        std::rethrow_exception(e); // a bug: 500, as before
                    self->send(self->with_cors(std::move(r), api::route::metrics));
                });
            }));
    }

    // GET /healthz: the outbox's health snapshot, which never waits on the write lock.
    void start_healthz() {
        state_->outbox().health(net::bind_executor(
            stream_.get_executor(), [self = shared_from_this()](outbox::health h) {
                self->guarded(
                    [&] { self->send(self->with_cors(api::healthz(h), api::route::healthz)); });
            }));
    }

    /// POST /v1/sync, /v1/cloud/pause, /v1/cloud/resume (the uploader only posts).
    void cloud_control(api::route r) {
        const auto& deps = state_->deps();
        const bool configured = deps.uploader && deps.cfg->cloud_enabled();
        if (configured) {
            if (r == api::route::sync)
                deps.uploader->sync_now();
            else if (r == api::route::cloud_pause)
                deps.uploader->pause();
            else
                deps.uploader->resume();
        }
        send(api::cloud_control(configured));
    }

    /// The dashboard of another loopback lane may read this answer (api::add_cors).
    api::response with_cors(api::response r, api::route rt) {
        auto& req = parser_->get();
        std::optional<std::string_view> origin;
        if (auto it = req.find(http::field::origin); it != req.end())
            origin = it->value();
        api::add_cors(r, rt, origin);
        return r;
    }

    /// POST /v1/messages: validate, then hand to the outbox writer; the answer is sent from
    /// on_published() after the durable commit.
    void start_publish() {
        auto& req = parser_->get();
        std::optional<std::string_view> ct;
        if (auto it = req.find(http::field::content_type); it != req.end())
            ct = it->value();
        auto checked = api::check_publish(ct, req.body(), state_->max_message_bytes());
        if (auto* r = std::get_if<api::response>(&checked))
            return send(std::move(*r));
        auto& pr = std::get<protocol::publish_request>(checked);
        topic_ = pr.topic;
        // Group-committed on the outbox writer; completes on this session's strand.
        state_->outbox().publish(
            std::move(pr),
            net::bind_executor(stream_.get_executor(),
                               [self = shared_from_this()](outbox::publish_outcome o) {
                                   self->guarded([&] { self->on_published(std::move(o)); });
                               }));
    }

    void on_published(outbox::publish_outcome o) {
        if (o.k == outbox::publish_outcome::created)
            am().accepted.inc();
        if (o.k == outbox::publish_outcome::created || o.k == outbox::publish_outcome::existing) {
            am().publish_seconds.observe(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
            published_id_ = o.rec.msg.id;
            published_seq_ = o.rec.msg.seq;
        }
        send(api::publish_answer(o));
    }

    /// Writes one answer; `close` ends the connection after it (with a lingering close).
    void send(api::response r, bool close = false) {
        unsigned version = 11;
        bool keep_alive = false;
        if (parser_ && parser_->is_header_done()) {
            version = parser_->get().version();
            keep_alive = parser_->get().keep_alive();
        }
        res_ = {};
        res_.version(version);
        res_.result(r.status);
        res_.set(http::field::server, "lanesync/" LANESYNC_VERSION);
        res_.set(http::field::content_type, r.content_type);
        res_.set(http::field::cache_control, "no-store");
        if (!r.allow.empty())
            res_.set(http::field::allow, r.allow);
        for (const auto& [name, value] : r.headers)
            res_.set(name, value);
        res_.body() = std::move(r.body);
        res_.keep_alive(keep_alive && !close && !stopping_);
        res_.prepare_payload();
        linger_ = close;
        log_request(r.status);
        published_id_.clear();
        am().code(r.status).inc();

        phase_ = phase::writing;
        stream_.expires_after(state_->timeout());
        http::async_write(stream_, res_,
                          beast::bind_front_handler(&http_session::on_write, shared_from_this()));
    }

    void on_write(error_code ec, std::size_t) {
        if (ec) {
            if (!is_expected_end(ec))
                log::debug("api.write_failed", {{"error", ec.message()}});
            phase_ = phase::closed;
            return;
        }
        if (res_.keep_alive())
            return do_read();
        if (linger_)
            return do_linger();
        do_close();
    }

    // Lingering close: stop sending, then read and discard what the client still sends.
    void do_linger() {
        error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        phase_ = phase::lingering;
        lingered_ = 0;
        stream_.expires_after(linger_time);
        do_drain();
    }

    void do_drain() {
        buffer_.clear();
        stream_.async_read_some(buffer_.prepare(8192),
                                [self = shared_from_this()](error_code ec, std::size_t n) {
                                    self->lingered_ += n;
                                    if (ec || self->lingered_ > linger_max_bytes)
                                        return self->do_close();
                                    self->do_drain();
                                });
    }

    void do_close() {
        phase_ = phase::closed;
        error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        stream_.close();
    }

    void log_request(unsigned status) {
        auto lvl = status >= 500 ? log::level::warn : log::level::debug;
        if (!log::enabled(lvl))
            return;
        auto ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_)
                .count();
        char ms_text[32];
        std::snprintf(ms_text, sizeof ms_text, "%.2f", ms);
        if (!published_id_.empty()) {
            // One line per publish; message data is never logged.
            log::write(lvl, "api.published",
                       {{"id", published_id_},
                        {"seq", std::to_string(published_seq_)},
                        {"topic", topic_},
                        {"status", std::to_string(status)},
                        {"ms", ms_text}});
        } else {
            log::write(lvl, "api.request",
                       {{"method", method_},
                        {"path", path_},
                        {"status", std::to_string(status)},
                        {"ms", ms_text}});
        }
    }

    beast::tcp_stream stream_;
    std::shared_ptr<api_shared_state> state_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::optional<http::response<http::empty_body>> continue_;
    http::response<http::string_body> res_;
    phase phase_ = phase::reading;
    bool stopping_ = false;
    bool linger_ = false;
    std::size_t lingered_ = 0;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    // For the request log line.
    std::string method_, path_, topic_, published_id_;
    std::uint64_t published_seq_ = 0;
};

/// Accepts local API connections on 127.0.0.1 and starts one http_session for each.
class api_listener : public std::enable_shared_from_this<api_listener> {
public:
    api_listener(net::io_context& ioc, std::shared_ptr<api_shared_state> state)
        : ioc_(ioc), acceptor_(net::make_strand(ioc)), retry_(acceptor_.get_executor()),
          state_(std::move(state)) {}

    /// Binds and listens; throws std::system_error naming the address.
    void bind(std::uint16_t port) {
        tcp::endpoint ep(net::ip::make_address_v4("127.0.0.1"), port);
        auto fail = [&](const error_code& ec) {
            throw std::system_error(ec, "local API: cannot listen on 127.0.0.1:" +
                                            std::to_string(port));
        };
        error_code ec;
        acceptor_.open(ep.protocol(), ec);
        if (ec)
            fail(ec);
        acceptor_.set_option(net::socket_base::reuse_address(true), ec);
        if (ec)
            fail(ec);
        acceptor_.bind(ep, ec);
        if (ec)
            fail(ec);
        acceptor_.listen(net::socket_base::max_listen_connections, ec);
        if (ec)
            fail(ec);
        port_ = acceptor_.local_endpoint().port();
    }

    std::uint16_t port() const { return port_; }

    /// Thread-safe: dispatches to the acceptor's strand.
    void run() {
        net::dispatch(acceptor_.get_executor(),
                      beast::bind_front_handler(&api_listener::do_accept, shared_from_this()));
    }

    /// Closes the acceptor. Thread-safe: posts to the acceptor's strand.
    void stop() {
        net::post(acceptor_.get_executor(), [self = shared_from_this()] {
            error_code ec;
            self->acceptor_.close(ec);
            self->retry_.cancel();
            self->state_->listener_closed();
        });
    }

private:
    // Accept the next connection, on its own strand.
    void do_accept() {
        if (!acceptor_.is_open())
            return;
        acceptor_.async_accept(
            net::make_strand(ioc_),
            beast::bind_front_handler(&api_listener::on_accept, shared_from_this()));
    }

    void on_accept(error_code ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted || !acceptor_.is_open())
            return;
        if (ec) {
            // E.g. EMFILE: wait a little instead of spinning on the error.
            log::warn("api.accept_failed", {{"error", ec.message()}});
            retry_.expires_after(std::chrono::milliseconds(100));
            retry_.async_wait([self = shared_from_this()](error_code wec) {
                if (!wec)
                    self->do_accept();
            });
            return;
        }
        // Answers are small: send them now, not after Nagle's delay.
        error_code nec;
        socket.set_option(tcp::no_delay(true), nec);
        auto session = std::make_shared<http_session>(std::move(socket), state_);
        if (state_->join(session)) {
            session->run();
        } else {
            am().refused.inc();
            log::debug("api.connection_refused",
                       {{"reason", state_->stopping() ? "stopping" : "too many connections"}});
            // Dropping `session` closes the socket.
        }
        do_accept();
    }

    net::io_context& ioc_;
    tcp::acceptor acceptor_;
    net::steady_timer retry_;
    std::shared_ptr<api_shared_state> state_;
    std::uint16_t port_ = 0;
};

struct api_server::impl {
    impl(net::io_context& io, api_deps deps)
        : ioc(io), state(std::make_shared<api_shared_state>(io, deps)) {}
    net::io_context& ioc;
    std::shared_ptr<api_shared_state> state;
    std::shared_ptr<api_listener> listener;
};

namespace {
api_deps checked(api_deps d) {
    if (!d.cfg || !d.store)
        throw std::invalid_argument("api_server needs a config and an outbox");
    return d;
}
} // namespace

api_server::api_server(net::io_context& ioc, api_deps deps)
    : impl_(std::make_shared<impl>(ioc, checked(deps))) {}

api_server::~api_server() {
    // Normally stop() ran already; otherwise at least stop accepting.
    if (impl_->listener && !impl_->state->stopping()) {
        for (auto& s : impl_->state->begin_stop(nullptr))
            s->stop();
        impl_->listener->stop();
    }
}

void api_server::start() {
    am(); // register the API series now, so the first scrape of /metrics lists them (at 0)
    auto l = std::make_shared<api_listener>(impl_->ioc, impl_->state);
    l->bind(impl_->state->deps().cfg->local_api_port);
    impl_->listener = l;
    l->run();
    log::info("api.listening", {{"address", "127.0.0.1:" + std::to_string(l->port())}});
}

void api_server::stop(std::function<void()> done) {
    auto sessions = impl_->state->begin_stop(std::move(done));
    if (impl_->listener)
        impl_->listener->stop();
    else
        impl_->state->listener_closed(); // never started
    for (auto& s : sessions)
        s->stop();
}

std::uint16_t api_server::port() const {
    return impl_->listener ? impl_->listener->port() : 0;
}

namespace test_hooks {
void set_api_request_timeout(std::chrono::milliseconds timeout) {
    request_timeout_override_ms.store(timeout.count());
}
} // namespace test_hooks

} // namespace lanesync::agent
