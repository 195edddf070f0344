// libFuzzer target: the local API's request handling without sockets (agent/api_routes.cpp,
// agent/api_publish.cpp): a request in, a response out, in the order http_session::handle()
// (agent/api_handlers.cpp) calls the pure functions, with a tiny in-memory outbox standing in
// for the reads and writes.
//
// Input: "METHOD TARGET\n", header lines "Name: value\n" (Host, Origin, Content-Type are used),
// an empty line, then the body. Properties: the status is one the API documents, a JSON answer
// parses, a 405 names what is allowed.
#include "agent/api_routes.hpp"
#include "agent/api_catalog.hpp"
#include "agent/api_publish.hpp"
#include "fuzz_check.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace {

namespace api = lanesync::agent::api;
namespace outbox = lanesync::outbox;
using lanesync::protocol::publish_request;

struct request {
    std::string method, target;
    std::optional<std::string> host, origin, content_type;
    std::string body;
};

std::string_view next_line(std::string_view& s) {
    auto nl = s.find('\n');
    auto l = s.substr(0, nl);
    s = nl == std::string_view::npos ? std::string_view() : s.substr(nl + 1);
    return l;
}

request parse(std::string_view in) {
    request r;
    auto first = next_line(in);
    auto sp = first.find(' ');
    r.method = std::string(first.substr(0, sp));
    if (sp != std::string_view::npos)
        r.target = std::string(first.substr(sp + 1));
    while (!in.empty()) {
        auto l = next_line(in);
        if (l.empty())
            break;
        auto colon = l.find(':');
        if (colon == std::string_view::npos)
            continue;
        auto name = l.substr(0, colon);
        auto value = l.substr(colon + 1);
        while (!value.empty() && value.front() == ' ')
            value.remove_prefix(1);
        if (name == "Host")
            r.host = std::string(value);
        else if (name == "Origin")
            r.origin = std::string(value);
        else if (name == "Content-Type")
            r.content_type = std::string(value);
    }
    r.body = std::string(in);
    return r;
}

/// The stand-in outbox: messages by id, seqs handed out in order.
struct tiny_outbox {
    std::map<std::string, outbox::record> by_id;
    std::uint64_t seq = 0;

    outbox::publish_outcome publish(const publish_request& p) {
        outbox::publish_outcome o;
        std::string id =
            p.id ? *p.id : "0190a5d3-ac96-7f4b-bc00-" + std::to_string(100000000000 + seq);
        if (auto it = by_id.find(id); it != by_id.end()) {
            o.rec = it->second;
            o.k = it->second.msg.data == p.data && it->second.msg.topic == p.topic
                      ? outbox::publish_outcome::existing
                      : outbox::publish_outcome::conflict;
            return o;
        }
        outbox::record rec;
        rec.msg.id = id;
        rec.msg.origin = "L1";
        rec.msg.seq = ++seq;
        rec.msg.topic = p.topic;
        rec.msg.prio = p.prio;
        rec.msg.data = p.data;
        rec.msg.created_at_ms = 1764547200000;
        rec.own = true;
        rec.stored_at_ms = rec.msg.created_at_ms;
        by_id[id] = rec;
        o.k = outbox::publish_outcome::created;
        o.rec = rec;
        return o;
    }
};

api::response publish(const request& rq, const api::target& t, tiny_outbox& box) {
    auto w = api::check_wait(t, true);
    if (auto* r = std::get_if<api::response>(&w))
        return *r;
    auto in = api::check_publish_input(rq.content_type, rq.body, 262144);
    if (auto* r = std::get_if<api::response>(&in))
        return *r;
    auto& p = std::get<api::publish_input>(in);
    const auto& q = std::get<api::wait_query>(w);
    if (!p.batch) {
        auto o = box.publish(p.requests.at(0));
        if (q.target)
            return api::waited_publish_answer(o, *q.target, o.rec.st);
        return api::publish_answer(o);
    }
    outbox::batch_outcome b;
    b.k = outbox::batch_outcome::stored;
    std::vector<std::optional<outbox::state>> now;
    for (const auto& r : p.requests) {
        b.items.push_back(box.publish(r));
        if (b.items.back().k == outbox::publish_outcome::conflict)
            b.k = outbox::batch_outcome::conflict;
        now.push_back(b.items.back().rec.st);
    }
    if (q.target && b.k == outbox::batch_outcome::stored)
        return api::waited_batch_answer(b, *q.target, now);
    return api::batch_answer(b);
}

/// The catalog this lane holds: scope "prices" complete through version 5, key "sku-1" in it.
const std::vector<lanesync::protocol::catalog_scope_state>& held_catalog() {
    static const std::vector<lanesync::protocol::catalog_scope_state> held = [] {
        lanesync::protocol::catalog_scope_state s;
        s.scope = "prices";
        s.through = s.head = 5;
        s.keys = 1;
        return std::vector{s};
    }();
    return held;
}

lanesync::protocol::catalog_change price_row() {
    return {"prices", "sku-1", 5, false, R"({"price_cents":100})", 1'764'633'600'000};
}

api::response handle(const request& rq, tiny_outbox& box) {
    auto t = api::parse_target(rq.target);
    if (!t)
        return api::error_response(400, "malformed request target");
    std::optional<std::string_view> host, origin;
    if (rq.host)
        host = *rq.host;
    if (rq.origin)
        origin = *rq.origin;
    if (auto why = api::foreign_request(host, origin); !why.empty())
        return api::error_response(403, why);
    auto m = api::route_request(rq.method, t->path);
    api::response r;
    switch (m.r) {
    case api::route::publish:
        r = publish(rq, *t, box);
        break;
    case api::route::list_messages: {
        auto checked = api::check_list(*t);
        if (auto* e = std::get_if<api::response>(&checked))
            return *e;
        auto q = std::get<api::list_query>(checked);
        std::vector<outbox::record> recs;
        for (const auto& [id, rec] : box.by_id)
            if (rec.st == q.st && recs.size() < q.limit)
                recs.push_back(rec);
        outbox::counts c;
        c.pending = box.by_id.size();
        r = api::list_answer(q, c, recs);
        break;
    }
    case api::route::get_message: {
        auto checked = api::check_message_id(m.id);
        if (auto* e = std::get_if<api::response>(&checked))
            return *e;
        auto id = std::get<std::string>(checked);
        auto w = api::check_wait(*t, true);
        if (auto* e = std::get_if<api::response>(&w))
            return *e;
        std::optional<outbox::record> rec;
        if (auto it = box.by_id.find(id); it != box.by_id.end())
            rec = it->second;
        const auto& q = std::get<api::wait_query>(w);
        r = q.target ? api::waited_message_answer(id, rec, *q.target)
                     : api::message_answer(id, rec);
        break;
    }
    case api::route::status:
        r = api::status_answer(nlohmann::json{{"terminal_id", "L1"}});
        break;
    case api::route::metrics:
        r = api::metrics_text();
        break;
    case api::route::healthz: {
        outbox::health h;
        h.writable = !box.by_id.empty();
        h.error = h.writable ? "" : "outbox is read-only";
        r = api::healthz(h);
        break;
    }
    case api::route::root:
        r = api::root_page();
        break;
    case api::route::rebuild: {
        auto checked = api::check_rebuild_body(rq.body);
        if (auto* e = std::get_if<api::response>(&checked))
            return *e;
        lanesync::lanes::exclude_result x;
        x.status = 409;
        x.error = "not rebuilding";
        r = api::rebuild_answer(x, lanesync::lanes::rebuild_view{});
        break;
    }
    case api::route::catalog_get: {
        auto checked = api::check_catalog_path(m.id);
        if (auto* e = std::get_if<api::response>(&checked))
            return *e;
        const auto& k = std::get<api::catalog_key>(checked);
        std::optional<lanesync::protocol::catalog_change> row;
        if (k.scope == "prices" && k.key == "sku-1")
            row = price_row();
        r = api::catalog_answer(k, held_catalog(), row);
        break;
    }
    case api::route::changes: {
        auto checked = api::check_changes(*t);
        if (auto* e = std::get_if<api::response>(&checked))
            return *e;
        const auto& q = std::get<api::changes_query>(checked);
        auto st = api::held_scope(q.scope, held_catalog());
        if (auto* e = std::get_if<api::response>(&st))
            return *e;
        std::vector<lanesync::protocol::catalog_change> rows;
        if (q.since < 5)
            rows.push_back(price_row());
        r = api::changes_answer(q, std::get<lanesync::protocol::catalog_scope_state>(st), rows);
        break;
    }
    case api::route::reload: {
        // The agent's reload outcomes, by the request's length (no env file here).
        lanesync::agent::reload_result res;
        res.result = static_cast<lanesync::agent::reload_result::outcome>(rq.body.size() % 4);
        res.error = res.result == lanesync::agent::reload_result::outcome::applied ||
                            res.result == lanesync::agent::reload_result::outcome::unchanged
                        ? ""
                        : "t.env:2: CLOUD_BATCH_SIZE: 0 is too small (1..1000)";
        r = api::reload_answer(box.seq % 2 == 0 ? &res : nullptr);
        break;
    }
    case api::route::sync:
    case api::route::cloud_pause:
    case api::route::cloud_resume:
        r = api::cloud_control(box.seq % 2 == 0);
        break;
    case api::route::wrong_method:
        FUZZ_CHECK(!m.allow.empty());
        r = api::error_response(405, "method not allowed; allowed: " + m.allow);
        r.allow = m.allow;
        break;
    case api::route::not_found:
        r = api::error_response(404, "no such route");
        break;
    }
    api::add_cors(r, m.r, origin);
    return r;
}

void check(const api::response& r) {
    static const std::vector<unsigned> documented = {200, 201, 202, 400, 403, 404,
                                                     405, 409, 413, 415, 422, 503};
    bool known = false;
    for (auto s : documented)
        known = known || s == r.status;
    FUZZ_CHECK(known);
    if (r.content_type == "application/json")
        FUZZ_CHECK(!nlohmann::json::parse(r.body, nullptr, false).is_discarded());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(bytes), size);
    tiny_outbox box;
    // A request may be sent twice (a client retrying with the same idempotency key).
    auto rq = parse(in);
    check(handle(rq, box));
    check(handle(rq, box));
    return 0;
}
