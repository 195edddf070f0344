#include "agent/api_server.hpp"

#include "agent/api_session.hpp"
#include "agent/api_test_hooks.hpp"
#include "base/log.hpp"
#include "base/log_limit.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <stdexcept>
#include <system_error>

namespace lanesync::agent {

namespace {

std::atomic<std::int64_t> request_timeout_override_ms{0};
std::atomic<std::size_t> max_waiters_override{0};

} // namespace

std::chrono::milliseconds request_timeout() {
    auto ms = request_timeout_override_ms.load();
    if (ms > 0)
        return std::chrono::milliseconds(ms);
    return std::chrono::duration_cast<std::chrono::milliseconds>(tuning::api_request_timeout);
}

std::size_t max_waiters() {
    auto n = max_waiters_override.load();
    return n > 0 ? n : tuning::api_max_waiters;
}

api_metrics& am() {
    static api_metrics m;
    return m;
}

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
            if (failed_lines_.gate("accept_failed"))
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
            const bool stopping = state_->stopping();
            if (stopping)
                log::debug("api.connection_refused", {{"reason", "stopping"}});
            else if (refused_lines_.gate("too_many_connections"))
                log::warn(
                    "api.connection_refused",
                    {{"reason", "too many connections"},
                     {"limit", std::to_string(state_->deps().cfg->local_api_max_connections)}});
            // Dropping `session` closes the socket.
        }
        do_accept();
    }

    net::io_context& ioc_;
    tcp::acceptor acceptor_;
    net::steady_timer retry_;
    std::shared_ptr<api_shared_state> state_;
    std::uint16_t port_ = 0;
    log::limited_lines refused_lines_{"api.connection_refused"};
    log::limited_lines failed_lines_{"api.accept_failed"};
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

void api_server::on_commit(const outbox::commit_info& ci) {
    impl_->state->waiters().wake(ci);
    if (ci.catalog_changed)
        impl_->state->catalog_changed();
}

std::uint16_t api_server::port() const {
    return impl_->listener ? impl_->listener->port() : 0;
}

namespace test_hooks {
void set_api_request_timeout(std::chrono::milliseconds timeout) {
    request_timeout_override_ms.store(timeout.count());
}

void set_api_max_waiters(std::size_t n) {
    max_waiters_override.store(n);
}
} // namespace test_hooks

} // namespace lanesync::agent
