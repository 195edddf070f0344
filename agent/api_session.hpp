#pragma once
/// Private to the local API (agent/api_server.cpp, api_session.cpp, api_handlers.cpp): the
/// state shared by the listener and every session, and one connection's session.
///   api_session.cpp   moving bytes: read, 100-continue, answer, keep-alive, lingering close
///   api_handlers.cpp  what a complete request does: route, validate, read or write the outbox
///                     through outbox::async_store, answer (pure parts in api_routes.cpp)
/// Heavy Beast headers stay out of api_server.hpp.

#include "agent/api_catalog.hpp"
#include "agent/api_publish.hpp"
#include "agent/api_routes.hpp"
#include "agent/api_server.hpp"
#include "agent/api_waiters.hpp"
#include "base/log.hpp"
#include "base/metrics.hpp"
#include "base/tuning.hpp"
#include "outbox/async.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace lanesync::agent {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

/// tuning::api_request_timeout, or the test override (api_test_hooks.hpp).
std::chrono::milliseconds request_timeout();
/// tuning::api_max_waiters, or the test override (api_test_hooks.hpp).
std::size_t max_waiters();

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

/// The API series, registered once.
api_metrics& am();

class http_session;

/// What the listener and every session share: the dependencies, limits, and the registry of
/// live sessions used by stop(). Thread-safe (a mutex: sessions live on different strands).
class api_shared_state {
public:
    api_shared_state(net::io_context& ioc, api_deps deps)
        : ioc_(ioc), deps_(deps), timeout_(request_timeout()),
          max_message_bytes_(deps.cfg->max_message_bytes),
          // A little room for the envelope around `data`; check_publish_input() then enforces
          // MAX_MESSAGE_BYTES on the body exactly.
          body_limit_(deps.cfg->max_message_bytes + 4096) {
        if (!deps_.outbox_async) {
            own_async_.emplace(ioc.get_executor(), *deps_.store);
            deps_.outbox_async = &*own_async_;
        }
        waiters_ = std::make_shared<ack_waiters>(ioc, *deps_.outbox_async, max_waiters());
    }

    const api_deps& deps() const { return deps_; }
    outbox::async_store& outbox() const { return *deps_.outbox_async; }
    ack_waiters& waiters() const { return *waiters_; }
    /// PEER_TERMINALS is set: own messages become peer_ack (wait=peer_ack is allowed).
    bool has_peers() const { return !deps_.cfg->peers.empty(); }
    std::chrono::milliseconds timeout() const { return timeout_; }
    std::size_t max_message_bytes() const { return max_message_bytes_; }
    std::size_t body_limit() const { return body_limit_; }

    /// Registers a new session; false when stopping or at LOCAL_API_MAX_CONNECTIONS.
    bool join(const std::shared_ptr<http_session>& s) {
        std::lock_guard lk(mutex_);
        if (stopping_ || sessions_.size() >= deps_.cfg->local_api_max_connections)
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

    // ---- waits for catalog changes (GET /v1/changes?timeout_ms=T) ---------------------------

    /// Counts catalog commits; read before a read of changes, handed to catalog_wait().
    std::uint64_t catalog_generation() const {
        std::lock_guard lk(catalog_mutex_);
        return catalog_gen_;
    }
    /// Runs `wake` (once, from the committing thread: post it) after the next catalog commit,
    /// at once when one came since generation `gen`. 0 (nothing registered) when
    /// max_waiters() waits are registered already; else a ticket for catalog_unwait().
    std::uint64_t catalog_wait(std::uint64_t gen, std::function<void()> wake) {
        std::unique_lock lk(catalog_mutex_);
        if (gen != catalog_gen_) {
            lk.unlock();
            wake();
            return ~std::uint64_t(0);
        }
        if (catalog_waits_.size() >= max_waiters())
            return 0;
        const auto ticket = ++catalog_ticket_;
        catalog_waits_.emplace(ticket, std::move(wake));
        changes_waiting().set(static_cast<double>(catalog_waits_.size()));
        return ticket;
    }
    void catalog_unwait(std::uint64_t ticket) {
        std::lock_guard lk(catalog_mutex_);
        catalog_waits_.erase(ticket);
        changes_waiting().set(static_cast<double>(catalog_waits_.size()));
    }
    static metrics::gauge& changes_waiting() {
        return metrics::global().get_gauge(
            "lanesync_api_changes_waiting",
            "GET /v1/changes requests waiting for a catalog commit now (timeout_ms)");
    }
    /// From the commit listener after a catalog page: wakes every wait.
    void catalog_changed() {
        std::unordered_map<std::uint64_t, std::function<void()>> waits;
        {
            std::lock_guard lk(catalog_mutex_);
            ++catalog_gen_;
            waits.swap(catalog_waits_);
            changes_waiting().set(0);
        }
        for (auto& [t, w] : waits)
            w();
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
    std::shared_ptr<ack_waiters> waiters_;
    const std::chrono::milliseconds timeout_;
    const std::size_t max_message_bytes_;
    const std::size_t body_limit_;

    mutable std::mutex catalog_mutex_;
    std::uint64_t catalog_gen_ = 0, catalog_ticket_ = 0;
    std::unordered_map<std::uint64_t, std::function<void()>> catalog_waits_;

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
          buffer_(tuning::api_header_limit + state_->body_limit() + 8192),
          wait_timer_(stream_.get_executor()) {}

    ~http_session() {
        forget_wait();
        state_->leave(this);
    }

    /// Thread-safe: dispatches to the session strand.
    void run();

    /// Closes the connection if it is waiting for (or reading) a request; a request being
    /// handled is answered first, with Connection: close. Thread-safe: posts to the strand.
    void stop();

private:
    enum class phase { reading, handling, waiting, writing, lingering, closed };

    /// A request waiting for acks (?wait=…), from its places' reservation to its answer.
    struct ack_wait {
        enum class kind { publish, batch, get } k = kind::publish;
        outbox::state target = outbox::state::peer_ack;
        std::chrono::milliseconds timeout{};
        std::size_t places = 0;   ///< reserved in the registry
        bool added = false;       ///< registered (then the registry gives the places back)
        bool settling = false;    ///< the answer is being prepared: ignore other endings
        std::uint64_t ticket = 0; ///< the registry's, once added
        std::vector<std::string> ids;
        outbox::publish_outcome single; ///< kind publish: what the commit answered
        outbox::batch_outcome batch;    ///< kind batch
    };

    // Read the next request's header, with the whole request under one deadline.
    void do_read();

    void on_read_header(error_code ec, std::size_t);

    void on_continue_sent(error_code ec, std::size_t);

    // Read the body, still under the deadline set in do_read().
    void do_read_body();

    void on_read(error_code ec, std::size_t);

    void on_read_error(const error_code& ec);

    /// Routes one complete request.
    void handle();

    // ---- routes that read the outbox: the read runs on the outbox reader thread, the answer
    // is sent from its completion, on this session's strand (outbox::async_store).

    /// Runs `read(store&)` on the reader thread, then sends `answer(result)` from here (503
    /// when the read threw), with the CORS headers of route `rt`.
    template <class Read, class Answer> void read_then(api::route rt, Read read, Answer answer);

    /// A completion must cost one request, not the agent (as on_read() does for handle()).
    template <class F> void guarded(F&& f);

    // GET /v1/messages/{id}[?wait=STATE&timeout_ms=N]
    void start_get(const std::string& raw_id, const api::target& t);

    // GET /v1/messages?state=...&limit=...: the count and the records in one read job.
    void start_list(const api::target& t);

    // GET /v1/status: gossip's and the uploader's status and the outbox counts, read together
    // (gossip's status reads the outbox too).
    void start_status();

    // GET /metrics: the collectors read the outbox, so the rendering runs on the reader thread.
    void start_metrics();

    // GET /healthz: the outbox's health snapshot, which never waits on the write lock.
    void start_healthz();

    /// POST /v1/sync, /v1/cloud/pause, /v1/cloud/resume (the uploader only posts).
    void cloud_control(api::route r);

    /// The dashboard of another loopback lane may read this answer (api::add_cors).
    api::response with_cors(api::response r, api::route rt);

    // ---- publishing and waiting for acks (api_publish_handlers.cpp) ----

    /// POST /v1/messages (one message or a batch): validate, reserve the wait's places, ask the
    /// lane (gossip::admit), then hand to the outbox writer; the answer is sent after the
    /// durable commit, or once the wait ends.
    void start_publish(const api::target& t);

    /// ... once the lane admits it (held during the start check, refused with the rebuild 503
    /// while rebuilding).
    void publish_admitted(api::publish_input in, std::optional<lanes::rebuild_view> no);

    void on_published(outbox::publish_outcome o);
    void on_batch_published(outbox::batch_outcome o);

    /// GET /v1/messages/{id}?wait=…: the first read of the record.
    void on_got_for_wait(std::optional<outbox::record> rec);

    /// Takes the places of a wait for `n` messages; false when the registry is full.
    bool reserve_wait(const api::wait_query& q, ack_wait::kind k, std::size_t n);

    /// Registers the wait, arms its timeout and watches the connection for the client leaving.
    void begin_wait();

    /// Prepares the answer: stops the timer, the watch and the registry entry; answers from
    /// `known` (the registry's read) or reads the states (the record for GET) first.
    void settle_wait(std::optional<ack_waiters::states> known);

    /// Sends the waited answer from the states (publish, batch) or the record (get).
    void answer_wait(const ack_waiters::states& sts);
    void answer_wait(const std::optional<outbox::record>& rec);

    /// Readable while waiting: the client left (EOF, error) or sent its next request early.
    void on_client_readable(std::uint64_t gen, error_code ec);

    /// Gives up the wait without answering (the client left, the session ends).
    void forget_wait();

    /// True while the wait of generation `gen` is the current one and not being answered.
    bool current_wait(std::uint64_t gen) const {
        return wait_ && gen == wait_gen_ && !wait_->settling;
    }

    /// POST /v1/rebuild {"without": [...]}: leave peers out of the rebuild.
    void start_rebuild();
    void start_reload();

    // ---- head office's data (api_catalog_handlers.cpp) ----

    /// GET /v1/catalog/{scope}/{key} (`rest` = "{scope}/{key}").
    void start_catalog_get(const std::string& rest);
    /// GET /v1/changes?scope=S&since=V&limit=N[&timeout_ms=T].
    void start_changes(const api::target& t);
    /// One read of the changes; with none and time left, waits for the next catalog commit.
    void read_changes(api::changes_query q, std::chrono::steady_clock::time_point deadline);
    /// The wait for a catalog commit ended (woken, timed out, the API stops): answer or read.
    void end_changes_wait(std::uint64_t gen, bool woken);

    /// Writes one answer; `close` ends the connection after it (with a lingering close).
    void send(api::response r, bool close = false);

    void on_write(error_code ec, std::size_t);

    // Lingering close: stop sending, then read and discard what the client still sends.
    void do_linger();

    void do_drain();

    void do_close();

    void log_request(unsigned status);

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
    // The request's wait for acks, if any; `wait_gen_` tells a stale completion from the current.
    std::optional<ack_wait> wait_;
    std::uint64_t wait_gen_ = 0;
    net::steady_timer wait_timer_;
    // A GET /v1/changes waiting for a catalog commit (catalog_ticket_ 0: none).
    std::optional<api::changes_query> changes_;
    std::chrono::steady_clock::time_point changes_deadline_{};
    std::uint64_t catalog_ticket_ = 0, changes_gen_ = 0;
    protocol::catalog_scope_state changes_scope_;
    std::optional<net::steady_timer> changes_timer_;
    // For the request log line.
    std::string method_, path_, topic_, published_id_;
    std::uint64_t published_seq_ = 0;
};

template <class F> void http_session::guarded(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        log::error("api.handler_failed", {{"path", path_}, {"error", e.what()}});
        forget_wait(); // a wait begun before the throw gives its places back
        send(api::error_response(500, "internal error"), true);
    }
}

} // namespace lanesync::agent
