// Head office's data on the local API: GET /v1/catalog/{scope}/{key} and GET /v1/changes,
// which long-polls with timeout_ms like the waits for acks: nothing polls, the outbox's commit
// listener wakes the waits after a catalog page (api_shared_state::catalog_changed), and the
// wait reads again. The pure half is api_catalog.cpp.
#include "agent/api_session.hpp"

#include <boost/asio/bind_executor.hpp>

namespace lanesync::agent {

void http_session::start_catalog_get(const std::string& rest) {
    auto checked = api::check_catalog_path(rest);
    if (auto* r = std::get_if<api::response>(&checked))
        return send(std::move(*r));
    auto k = std::get<api::catalog_key>(std::move(checked));
    using result = std::pair<std::vector<protocol::catalog_scope_state>,
                             std::optional<protocol::catalog_change>>;
    state_->outbox().read(
        [k](outbox::store& s) { return result(s.catalog_scopes(), s.catalog_get(k.scope, k.key)); },
        net::bind_executor(stream_.get_executor(), [self = shared_from_this(),
                                                    k](std::exception_ptr e, result r) {
            self->guarded([&] {
                self->send(e ? api::storage_failure(e) : api::catalog_answer(k, r.first, r.second));
            });
        }));
}

void http_session::start_changes(const api::target& t) {
    auto checked = api::check_changes(t);
    if (auto* r = std::get_if<api::response>(&checked))
        return send(std::move(*r));
    auto q = std::get<api::changes_query>(std::move(checked));
    read_changes(q, std::chrono::steady_clock::now() + q.timeout);
}

void http_session::read_changes(api::changes_query q,
                                std::chrono::steady_clock::time_point deadline) {
    // The generation is read before the outbox: a commit after it wakes the wait at once.
    const auto gen = state_->catalog_generation();
    using result = std::pair<std::vector<protocol::catalog_scope_state>,
                             std::vector<protocol::catalog_change>>;
    state_->outbox().read(
        [q](outbox::store& s) {
            return result(s.catalog_scopes(), s.catalog_since(q.scope, q.since, q.limit));
        },
        net::bind_executor(stream_.get_executor(), [self = shared_from_this(), q, deadline,
                                                    gen](std::exception_ptr e, result r) {
            self->guarded([&] {
                if (e)
                    return self->send(api::storage_failure(e));
                auto st = api::held_scope(q.scope, r.first);
                if (auto* bad = std::get_if<api::response>(&st))
                    return self->send(std::move(*bad));
                const auto& scope = std::get<protocol::catalog_scope_state>(st);
                if (!r.second.empty() || q.timeout.count() == 0 || self->stopping_ ||
                    std::chrono::steady_clock::now() >= deadline)
                    return self->send(api::changes_answer(q, scope, r.second));
                // Nothing yet: wait for the next catalog commit or the deadline.
                self->changes_ = q;
                self->changes_deadline_ = deadline;
                self->changes_scope_ = scope;
                const auto my_gen = ++self->changes_gen_;
                std::weak_ptr<http_session> weak = self;
                auto ticket = self->state_->catalog_wait(gen, [weak, my_gen] {
                    if (auto s = weak.lock())
                        net::post(s->stream_.get_executor(),
                                  [s, my_gen] { s->end_changes_wait(my_gen, true); });
                });
                if (ticket == 0) {
                    self->changes_.reset();
                    return self->send(api::too_many_waiters());
                }
                self->catalog_ticket_ = ticket;
                if (!self->changes_timer_)
                    self->changes_timer_.emplace(self->stream_.get_executor());
                self->changes_timer_->expires_at(deadline);
                // The timer holds the session while it waits (nothing else does).
                self->changes_timer_->async_wait(
                    [self, my_gen](error_code) { self->end_changes_wait(my_gen, false); });
            });
        }));
}

void http_session::end_changes_wait(std::uint64_t gen, bool woken) {
    if (gen != changes_gen_ || !changes_)
        return; // an earlier wait's late completion
    ++changes_gen_;
    auto q = *changes_;
    changes_.reset();
    if (catalog_ticket_ != ~std::uint64_t(0))
        state_->catalog_unwait(catalog_ticket_);
    catalog_ticket_ = 0;
    if (changes_timer_)
        changes_timer_->cancel();
    guarded([&] {
        if (woken && !stopping_)
            return read_changes(q, changes_deadline_);
        send(api::changes_answer(q, changes_scope_, {})); // timed out (or stopping): nothing new
    });
}

} // namespace lanesync::agent
