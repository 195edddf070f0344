// What a complete request does: route it, validate it (api_routes, pure), read or write the
// outbox through outbox::async_store (reads on the outbox reader thread, writes on its writer;
// the answer is sent from the completion, on this session's strand).
#include "agent/api_session.hpp"

#include "agent/status.hpp"
#include "base/log.hpp"
#include "protocol/message.hpp"

#include <boost/asio/bind_executor.hpp>

#include <exception>
#include <utility>
#include <variant>

namespace lanesync::agent {

template <class Read, class Answer>
void http_session::read_then(api::route rt, Read read, Answer answer) {
    state_->outbox().read(
        std::move(read),
        net::bind_executor(stream_.get_executor(),
                           [self = shared_from_this(), rt,
                            answer = std::move(answer)](std::exception_ptr e, auto result) {
                               self->guarded([&] {
                                   auto r = e ? api::storage_failure(e) : answer(std::move(result));
                                   self->send(self->with_cors(std::move(r), rt));
                               });
                           }));
}

void http_session::handle() {
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
        return start_publish(*t);
    case api::route::list_messages:
        return start_list(*t);
    case api::route::get_message:
        return start_get(m.id, *t);
    case api::route::status:
        return start_status();
    case api::route::metrics:
        return start_metrics();
    case api::route::healthz:
        return start_healthz();
    case api::route::root:
        return send(api::root_page());
    case api::route::rebuild:
        return start_rebuild();
    case api::route::reload:
        return start_reload();
    case api::route::catalog_get:
        return start_catalog_get(m.id);
    case api::route::changes:
        return start_changes(*t);
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

// GET /v1/messages/{id}, long-polling with ?wait=STATE (then the first read starts the wait).
void http_session::start_get(const std::string& raw_id, const api::target& t) {
    auto checked = api::check_message_id(raw_id);
    if (auto* r = std::get_if<api::response>(&checked))
        return send(std::move(*r));
    auto id = std::get<std::string>(std::move(checked));
    auto w = api::check_wait(t, state_->has_peers());
    if (auto* r = std::get_if<api::response>(&w))
        return send(std::move(*r));
    const auto& q = std::get<api::wait_query>(w);
    if (q.target) {
        if (!reserve_wait(q, ack_wait::kind::get, 1))
            return send(api::too_many_waiters());
        wait_->ids = {id};
        state_->outbox().get(
            id, net::bind_executor(stream_.get_executor(), [self = shared_from_this()](
                                                               std::optional<outbox::record> rec) {
                self->guarded([&] { self->on_got_for_wait(std::move(rec)); });
            }));
        return;
    }
    read_then(
        api::route::get_message, [id](outbox::store& s) { return s.get(id); },
        [id](std::optional<outbox::record> rec) { return api::message_answer(id, rec); });
}

// GET /v1/messages?state=...&limit=...: the count and the records in one read job.
void http_session::start_list(const api::target& t) {
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
void http_session::start_status() {
    const auto& deps = state_->deps();
    read_then(
        api::route::status,
        // The configuration by value: a live reload changes the agent's on the io thread.
        [cfg = *deps.cfg, gossip = deps.gossip, uploader = deps.uploader, puller = deps.puller,
         reload = deps.last_reload ? deps.last_reload() : std::nullopt](outbox::store& s) {
            auto in = read_status_inputs(s, gossip, uploader, puller);
            in.reload = reload;
            return status_json(cfg, in, true, protocol::now_ms());
        },
        [](nlohmann::json doc) { return api::status_answer(doc); });
}

// GET /metrics: the collectors read the outbox, so the rendering runs on the reader thread.
void http_session::start_metrics() {
    state_->outbox().read(
        [](outbox::store&) { return api::metrics_text(); },
        net::bind_executor(stream_.get_executor(),
                           [self = shared_from_this()](std::exception_ptr e, api::response r) {
                               self->guarded([&] {
                                   if (e)
                                       std::rethrow_exception(e); // a bug: 500, as before
                                   self->send(self->with_cors(std::move(r), api::route::metrics));
                               });
                           }));
}

// GET /healthz: 503 while the lane rebuilds, else the outbox's health snapshot, which never
// waits on the write lock.
void http_session::start_healthz() {
    if (const auto* g = state_->deps().gossip) {
        auto v = g->rebuild();
        if (v.active)
            return send(with_cors(api::healthz_rebuilding(v), api::route::healthz));
    }
    state_->outbox().health(net::bind_executor(stream_.get_executor(), [self = shared_from_this()](
                                                                           outbox::health h) {
        self->guarded([&] { self->send(self->with_cors(api::healthz(h), api::route::healthz)); });
    }));
}

// POST /v1/rebuild: the answer comes from the lane's rebuild controller (no outbox call).
void http_session::start_rebuild() {
    auto checked = api::check_rebuild_body(parser_->get().body());
    if (auto* r = std::get_if<api::response>(&checked))
        return send(std::move(*r));
    auto* g = state_->deps().gossip;
    if (!g)
        return send(api::error_response(409, "not rebuilding"));
    auto without = std::get<std::vector<std::string>>(std::move(checked));
    auto res = g->rebuild_without(without);
    if (res.status == 200 && !without.empty())
        log::info("api.rebuild_without", {{"peers", std::to_string(without.size())}});
    send(api::rebuild_answer(res, g->rebuild()));
}

// POST /v1/reload: the agent re-reads its env file here, on the io thread (a small file).
void http_session::start_reload() {
    const auto& deps = state_->deps();
    if (!deps.reload)
        return send(api::reload_answer(nullptr));
    auto r = deps.reload("api");
    send(api::reload_answer(&r));
}

void http_session::cloud_control(api::route r) {
    const auto& deps = state_->deps();
    const bool configured = deps.uploader && deps.cfg->cloud_enabled();
    if (configured) {
        if (r == api::route::sync) {
            deps.uploader->sync_now();
            if (deps.puller)
                deps.puller->pull_now(); // sync-now pulls head office's changes too
        } else if (r == api::route::cloud_pause)
            deps.uploader->pause();
        else
            deps.uploader->resume();
    }
    send(api::cloud_control(configured));
}

api::response http_session::with_cors(api::response r, api::route rt) {
    auto& req = parser_->get();
    std::optional<std::string_view> origin;
    if (auto it = req.find(http::field::origin); it != req.end())
        origin = it->value();
    api::add_cors(r, rt, origin);
    return r;
}

} // namespace lanesync::agent
