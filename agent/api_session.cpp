// One local API connection: the do_read -> on_read -> send -> on_write chain, with limits set
// before each read, 100-continue, keep-alive and the lingering close (docs/api.md).
#include "agent/api_session.hpp"

#include "base/log.hpp"

#include <boost/asio/dispatch.hpp>

#include <algorithm>
#include <cstdio>

namespace lanesync::agent {
namespace {

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

} // namespace

void http_session::run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&http_session::do_read, shared_from_this()));
}

void http_session::stop() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
        self->stopping_ = true;
        if (self->phase_ == phase::reading || self->phase_ == phase::lingering)
            self->stream_.cancel();
        // A wait for acks ends now: answered with the state it reached (202 if short of it).
        if (self->phase_ == phase::waiting && self->wait_ && !self->wait_->settling)
            self->guarded([&] { self->settle_wait(std::nullopt); });
        // A wait for catalog changes ends now: answered with nothing new.
        if (self->changes_)
            self->end_changes_wait(self->changes_gen_, false);
    });
}

// Read the next request's header, with the whole request under one deadline.
void http_session::do_read() {
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

void http_session::on_read_header(error_code ec, std::size_t) {
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

void http_session::on_continue_sent(error_code ec, std::size_t) {
    if (ec)
        return on_read_error(ec);
    do_read_body();
}

// Read the body, still under the deadline set in do_read().
void http_session::do_read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&http_session::on_read, shared_from_this()));
}

void http_session::on_read(error_code ec, std::size_t) {
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

void http_session::on_read_error(const error_code& ec) {
    if (!parser_ || !parser_->is_header_done()) {
        // Nothing usable arrived; the log line of an error answer names no route.
        started_ = std::chrono::steady_clock::now();
        method_ = "-";
        path_ = "-";
    }
    if (ec == http::error::body_limit || ec == http::error::buffer_overflow) {
        return send(api::error_response(413, "body larger than MAX_MESSAGE_BYTES (" +
                                                 std::to_string(state_->max_message_bytes()) + ")"),
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

void http_session::send(api::response r, bool close) {
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

void http_session::on_write(error_code ec, std::size_t) {
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
void http_session::do_linger() {
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    phase_ = phase::lingering;
    lingered_ = 0;
    stream_.expires_after(linger_time);
    do_drain();
}

void http_session::do_drain() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(8192),
                            [self = shared_from_this()](error_code ec, std::size_t n) {
                                self->lingered_ += n;
                                if (ec || self->lingered_ > linger_max_bytes)
                                    return self->do_close();
                                self->do_drain();
                            });
}

void http_session::do_close() {
    phase_ = phase::closed;
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
}

void http_session::log_request(unsigned status) {
    auto lvl = status >= 500 ? log::level::warn : log::level::debug;
    if (!log::enabled(lvl))
        return;
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_)
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

} // namespace lanesync::agent
