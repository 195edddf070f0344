#include "agent/api_publish.hpp"

#include "agent/views.hpp"

#include <charconv>

namespace lanesync::agent::api {
namespace {

using nlohmann::json;

std::string seconds_text(std::chrono::steady_clock::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count());
}

/// timeout_ms: an integer from 1 to tuning::api_wait_max.
std::optional<std::chrono::milliseconds> parse_timeout(const std::string& v) {
    long long n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc{} || p != v.data() + v.size() || n < 1 ||
        n > tuning::api_wait_max.count())
        return std::nullopt;
    return std::chrono::milliseconds(n);
}

} // namespace

std::variant<wait_query, response> check_wait(const target& t, bool has_peers) {
    wait_query q;
    bool seen_wait = false, seen_timeout = false;
    for (const auto& [k, v] : t.query) {
        if (k == "wait") {
            if (seen_wait)
                return error_response(400, "wait given twice");
            seen_wait = true;
            auto st = outbox::parse_state(v);
            if (!st || (*st != outbox::state::peer_ack && *st != outbox::state::cloud_ack))
                return error_response(400, "wait must be peer_ack or cloud_ack");
            q.target = st;
        } else if (k == "timeout_ms") {
            if (seen_timeout)
                return error_response(400, "timeout_ms given twice");
            seen_timeout = true;
            auto ms = parse_timeout(v);
            if (!ms)
                return error_response(400, "timeout_ms must be an integer from 1 to " +
                                               std::to_string(tuning::api_wait_max.count()));
            q.timeout = *ms;
        } else {
            return error_response(400, "unknown query parameter: " + echo(k));
        }
    }
    if (seen_timeout && !q.target)
        return error_response(400, "timeout_ms needs wait=peer_ack or wait=cloud_ack");
    if (q.target == outbox::state::peer_ack && !has_peers)
        return error_response(400, "wait=peer_ack needs peers: this lane has no PEER_TERMINALS "
                                   "and uploads pending messages directly; wait for cloud_ack");
    return q;
}

wait_verdict verdict(outbox::state target, std::optional<outbox::state> st) {
    if (!st)
        return wait_verdict::not_yet;
    switch (*st) {
    case outbox::state::failed:
        return wait_verdict::failed;
    case outbox::state::cloud_ack:
        return wait_verdict::reached;
    case outbox::state::peer_ack:
        return target == outbox::state::peer_ack ? wait_verdict::reached : wait_verdict::not_yet;
    case outbox::state::pending:
        break;
    }
    return target == outbox::state::pending ? wait_verdict::reached : wait_verdict::not_yet;
}

wait_verdict verdict(outbox::state target, const std::vector<std::optional<outbox::state>>& sts) {
    bool all = true;
    for (const auto& st : sts) {
        auto v = verdict(target, st);
        if (v == wait_verdict::failed)
            return v;
        all = all && v == wait_verdict::reached;
    }
    return all ? wait_verdict::reached : wait_verdict::not_yet;
}

std::variant<publish_input, response>
check_publish_input(std::optional<std::string_view> content_type, std::string_view body,
                    std::size_t max_message_bytes) {
    if (content_type && !is_json_media_type(*content_type))
        return error_response(415, "Content-Type must be application/json (got '" +
                                       echo(*content_type) + "')");
    if (body.size() > max_message_bytes)
        return error_response(413, "body is " + std::to_string(body.size()) +
                                       " bytes, more than MAX_MESSAGE_BYTES (" +
                                       std::to_string(max_message_bytes) + ")");
    auto parsed = protocol::parse_publish_body(body, tuning::api_batch_max_messages);
    if (!parsed)
        return error_response(400, parsed.error());
    auto& b = parsed.value();
    if (b.batch && b.batch_size > tuning::api_batch_max_messages)
        return error_response(413, "batch has " + std::to_string(b.batch_size) +
                                       " messages, more than " +
                                       std::to_string(tuning::api_batch_max_messages));
    if (!b.errors.empty()) {
        json errors = json::array();
        for (const auto& e : b.errors)
            errors.push_back({{"index", e.index}, {"error", e.error}});
        return error_response(400,
                              std::to_string(b.errors.size()) + " of " +
                                  std::to_string(b.batch_size) +
                                  " messages are invalid; nothing was stored",
                              {{"errors", std::move(errors)}});
    }
    return publish_input{b.batch, std::move(b.requests)};
}

response too_many_waiters() {
    auto r = error_response(503, "too many waits for acks at once (at most " +
                                     std::to_string(tuning::api_max_waiters) +
                                     " messages); nothing was stored, retry later");
    r.headers.emplace_back("Retry-After", seconds_text(tuning::api_waiters_retry_after));
    return r;
}

response batch_answer(const outbox::batch_outcome& o) {
    if (o.k == outbox::batch_outcome::storage_failed)
        return error_response(503, "storage failure: " +
                                       (o.error.empty() ? std::string("unknown") : o.error));
    json list = json::array();
    if (o.k == outbox::batch_outcome::conflict) {
        for (std::size_t i = 0; i < o.items.size(); ++i)
            if (o.items[i].k == outbox::publish_outcome::conflict)
                list.push_back({{"index", i},
                                {"id", o.items[i].rec.msg.id},
                                {"error", "id already used with other content"}});
        return error_response(409,
                              std::to_string(list.size()) +
                                  " ids already used with other content; nothing was stored",
                              {{"errors", std::move(list)}});
    }
    std::string origin;
    for (const auto& it : o.items) {
        origin = it.rec.msg.origin;
        list.push_back({{"id", it.rec.msg.id},
                        {"seq", it.rec.msg.seq},
                        {"state", outbox::to_string(it.rec.st)},
                        {"status", it.k == outbox::publish_outcome::created ? 201 : 200}});
    }
    return json_response(201, {{"origin", origin}, {"count", o.items.size()}, {"messages", list}});
}

response waited_publish_answer(outbox::publish_outcome o, outbox::state target,
                               std::optional<outbox::state> now) {
    if (now)
        o.rec.st = *now;
    auto r = publish_answer(o);
    if (r.status < 300 && verdict(target, o.rec.st) != wait_verdict::reached)
        r.status = 202;
    return r;
}

response waited_batch_answer(outbox::batch_outcome o, outbox::state target,
                             const std::vector<std::optional<outbox::state>>& now) {
    if (now.size() == o.items.size())
        for (std::size_t i = 0; i < now.size(); ++i)
            if (now[i])
                o.items[i].rec.st = *now[i];
    std::vector<std::optional<outbox::state>> sts;
    for (const auto& it : o.items)
        sts.emplace_back(it.rec.st);
    auto r = batch_answer(o);
    if (r.status < 300 && verdict(target, sts) != wait_verdict::reached)
        r.status = 202;
    return r;
}

response waited_message_answer(const std::string& id, const std::optional<outbox::record>& rec,
                               outbox::state target) {
    auto r = message_answer(id, rec);
    if (rec && verdict(target, rec->st) != wait_verdict::reached)
        r.status = 202;
    return r;
}

} // namespace lanesync::agent::api
