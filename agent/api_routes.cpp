#include "agent/api_routes.hpp"

#include "agent/dashboard.hpp"
#include "agent/status.hpp"
#include "agent/views.hpp"
#include "base/metrics.hpp"
#include "base/text.hpp"
#include "base/tuning.hpp"
#include "protocol/message.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace lanesync::agent::api {
namespace {

using nlohmann::json;

constexpr std::string_view messages_prefix = "/v1/messages/";

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/// Percent-decoding; '+' is a space in query components. nullopt on a broken escape.
std::optional<std::string> decode(std::string_view s, bool plus_is_space) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= s.size())
                return std::nullopt;
            int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return std::nullopt;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    return out;
}

} // namespace

std::string echo(std::string_view s) {
    if (s.size() <= 64)
        return std::string(s);
    return std::string(s.substr(0, 64)) + "...";
}

response json_response(unsigned status, const nlohmann::json& body) {
    response r;
    r.status = status;
    r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
    r.body += '\n';
    return r;
}

response error_response(unsigned status, std::string_view message, nlohmann::json extra) {
    json j = std::move(extra);
    if (!j.is_object())
        j = json::object();
    j["error"] = std::string(message);
    return json_response(status, j);
}

bool is_json_media_type(std::string_view content_type) {
    auto semi = content_type.find(';');
    auto type = text::lower(trim(content_type.substr(0, semi)));
    if (type == "application/json")
        return true;
    auto slash = type.find('/');
    return slash != std::string::npos && type.size() > 5 && type.ends_with("+json");
}

match route_request(std::string_view method, std::string_view path) {
    auto only = [&](std::string_view allowed, route r) -> match {
        if (method == allowed)
            return {r, {}, {}};
        return {route::wrong_method, {}, std::string(allowed)};
    };
    if (path == "/v1/messages") {
        if (method == "POST")
            return {route::publish, {}, {}};
        if (method == "GET")
            return {route::list_messages, {}, {}};
        return {route::wrong_method, {}, "GET, POST"};
    }
    if (path.starts_with(messages_prefix)) {
        auto id = path.substr(messages_prefix.size());
        if (id.find('/') != std::string_view::npos)
            return {route::not_found, {}, {}};
        auto m = only("GET", route::get_message);
        m.id = std::string(id);
        return m;
    }
    if (path == "/v1/status")
        return only("GET", route::status);
    if (path == "/metrics")
        return only("GET", route::metrics);
    if (path == "/healthz")
        return only("GET", route::healthz);
    if (path == "/")
        return only("GET", route::root);
    if (path == "/v1/sync")
        return only("POST", route::sync);
    if (path == "/v1/cloud/pause")
        return only("POST", route::cloud_pause);
    if (path == "/v1/cloud/resume")
        return only("POST", route::cloud_resume);
    if (path == "/v1/rebuild")
        return only("POST", route::rebuild);
    if (path == "/v1/reload")
        return only("POST", route::reload);
    if (path.starts_with("/v1/catalog/")) {
        auto m = only("GET", route::catalog_get);
        m.id = std::string(path.substr(std::string_view("/v1/catalog/").size()));
        return m;
    }
    if (path == "/v1/changes")
        return only("GET", route::changes);
    return {route::not_found, {}, {}};
}

std::optional<target> parse_target(std::string_view raw) {
    if (raw.empty() || raw.front() != '/')
        return std::nullopt; // only origin-form targets are served
    target t;
    auto q = raw.find('?');
    auto path = decode(raw.substr(0, q), false);
    if (!path)
        return std::nullopt;
    t.path = std::move(*path);
    if (q == std::string_view::npos)
        return t;
    std::string_view query = raw.substr(q + 1);
    auto hash = query.find('#');
    query = query.substr(0, hash);
    while (!query.empty()) {
        auto amp = query.find('&');
        auto part = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (part.empty())
            continue;
        auto eq = part.find('=');
        auto k = decode(part.substr(0, eq), true);
        auto v =
            decode(eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1), true);
        if (!k || !v)
            return std::nullopt;
        t.query.emplace_back(std::move(*k), std::move(*v));
    }
    return t;
}

response publish_answer(const outbox::publish_outcome& o) {
    switch (o.k) {
    case outbox::publish_outcome::created:
        return json_response(201, publish_json(o.rec));
    case outbox::publish_outcome::existing:
        return json_response(200, publish_json(o.rec));
    case outbox::publish_outcome::conflict:
        return error_response(409, "id already used with other content", {{"id", o.rec.msg.id}});
    case outbox::publish_outcome::storage_failed:
        break;
    }
    return error_response(503, "storage failure: " +
                                   (o.error.empty() ? std::string("unknown") : o.error));
}

response storage_failure(std::exception_ptr e) {
    const std::string why = e ? text::what(e) : std::string("unknown");
    return error_response(503, "storage failure: " + why);
}

std::variant<std::string, response> check_message_id(std::string_view id) {
    if (!protocol::valid_uuid(id))
        return error_response(400,
                              "id must be a UUID (8-4-4-4-12 hex digits), got '" + echo(id) + "'");
    return protocol::normalize_uuid(id);
}

response message_answer(const std::string& id, const std::optional<outbox::record>& rec) {
    if (!rec)
        return error_response(404, "no message with this id", {{"id", id}});
    return json_response(200, record_json(*rec));
}

std::variant<list_query, response> check_list(const target& t) {
    std::optional<outbox::state> st;
    std::size_t limit = tuning::api_list_default_limit;
    bool seen_state = false, seen_limit = false;
    for (const auto& [k, v] : t.query) {
        if (k == "state") {
            if (seen_state)
                return error_response(400, "state given twice");
            seen_state = true;
            st = outbox::parse_state(v);
            if (!st)
                return error_response(400,
                                      "state must be one of pending, peer_ack, cloud_ack, failed");
        } else if (k == "limit") {
            if (seen_limit)
                return error_response(400, "limit given twice");
            seen_limit = true;
            std::size_t n = 0;
            auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (v.empty() || ec != std::errc{} || p != v.data() + v.size() ||
                n > tuning::api_list_max_limit)
                return error_response(400, "limit must be an integer from 0 to " +
                                               std::to_string(tuning::api_list_max_limit));
            limit = n;
        } else {
            return error_response(400, "unknown query parameter: " + echo(k));
        }
    }
    if (!st)
        return error_response(
            400, "missing query parameter: state (pending, peer_ack, cloud_ack or failed)");
    return list_query{*st, limit};
}

response list_answer(const list_query& q, const outbox::counts& c,
                     const std::vector<outbox::record>& records) {
    std::uint64_t count = 0;
    switch (q.st) {
    case outbox::state::pending:
        count = c.pending;
        break;
    case outbox::state::peer_ack:
        count = c.peer_ack;
        break;
    case outbox::state::cloud_ack:
        count = c.cloud_ack;
        break;
    case outbox::state::failed:
        count = c.failed;
        break;
    }
    json msgs = json::array();
    for (const auto& rec : records)
        msgs.push_back(record_json(rec));
    return json_response(200, {{"state", outbox::to_string(q.st)},
                               {"count", count},
                               {"limit", q.limit},
                               {"messages", std::move(msgs)}});
}

response status_answer(const nlohmann::json& doc) {
    return json_response(200, doc);
}

response metrics_text() {
    response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics::global().render();
    return r;
}

response healthz(const outbox::health& h) {
    if (h.writable)
        return json_response(200, {{"ok", true}, {"status", "ok"}});
    if (h.disk_full)
        return json_response(503, {{"ok", false},
                                   {"status", "disk_full"},
                                   {"error", "outbox disk is full"},
                                   {"reason", h.error}});
    return json_response(503, {{"ok", false},
                               {"status", "not_writable"},
                               {"error", "outbox is not writable"},
                               {"reason", h.error}});
}

response healthz_rebuilding(const lanes::rebuild_view& v) {
    json waiting = json::array();
    for (const auto& w : v.waiting_for)
        waiting.push_back(w);
    return json_response(503, {{"ok", false},
                               {"status", "rebuilding"},
                               {"reason", v.reason},
                               {"progress", v.progress},
                               {"waiting_for", std::move(waiting)}});
}

response rebuilding_answer(const lanes::rebuild_view& v) {
    auto r = error_response(503, "rebuilding: " + v.reason, {{"rebuild", rebuild_json(v)}});
    r.headers.emplace_back(
        "Retry-After",
        std::to_string(
            std::chrono::duration_cast<std::chrono::seconds>(tuning::rebuild_retry_after).count()));
    return r;
}

std::variant<std::vector<std::string>, response> check_rebuild_body(std::string_view body) {
    std::vector<std::string> out;
    if (trim(body).empty())
        return out;
    auto j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return error_response(400, "body must be a JSON object: {\"without\": [\"L3\"]}");
    for (auto it = j.begin(); it != j.end(); ++it)
        if (it.key() != "without")
            return error_response(400, "unknown field: " + echo(it.key()));
    if (!j.contains("without"))
        return out;
    const auto& w = j["without"];
    if (!w.is_array() || w.size() > 1024)
        return error_response(400, "without must be an array of terminal ids or peer URLs");
    for (const auto& x : w) {
        if (!x.is_string() || x.get<std::string>().empty() || x.get<std::string>().size() > 1024)
            return error_response(400, "without must be an array of terminal ids or peer URLs");
        out.push_back(x.get<std::string>());
    }
    return out;
}

response rebuild_answer(const lanes::exclude_result& r, const lanes::rebuild_view& v) {
    if (r.status != 200)
        return error_response(r.status, r.error);
    return json_response(200, rebuild_json(v));
}

response root_page() {
    response r;
    r.content_type = "text/html; charset=utf-8";
    r.body = std::string(dashboard::html());
    r.headers = {{"Content-Security-Policy", dashboard::content_security_policy()},
                 {"X-Content-Type-Options", "nosniff"},
                 {"Referrer-Policy", "no-referrer"}};
    return r;
}

bool is_loopback_origin(std::string_view origin) {
    for (std::string_view host : {"http://127.0.0.1", "http://localhost", "http://[::1]"}) {
        if (!origin.starts_with(host))
            continue;
        auto rest = origin.substr(host.size());
        if (rest.empty())
            return true;
        if (rest.front() != ':' || rest.size() < 2 || rest.size() > 6)
            return false;
        return std::all_of(rest.begin() + 1, rest.end(),
                           [](char c) { return c >= '0' && c <= '9'; });
    }
    return false;
}

std::string foreign_request(std::optional<std::string_view> host,
                            std::optional<std::string_view> origin) {
    if (origin && !is_loopback_origin(*origin))
        return "cross-origin request refused: the local API serves this machine only";
    if (host) {
        std::string_view h = *host;
        // Strip the port: "127.0.0.1:9123", "[::1]:9123", "localhost".
        if (!h.empty() && h.front() == '[') {
            auto close = h.find(']');
            h = close == std::string_view::npos ? std::string_view{} : h.substr(0, close + 1);
        } else if (auto colon = h.rfind(':'); colon != std::string_view::npos) {
            h = h.substr(0, colon);
        }
        if (h != "127.0.0.1" && h != "localhost" && h != "[::1]")
            return "request refused: Host must name this machine (127.0.0.1 or localhost)";
    }
    return {};
}

response reload_answer(const reload_result* r) {
    if (!r)
        return error_response(409, "reload is not available");
    auto body = reload_json(*r);
    switch (r->result) {
    case reload_result::outcome::refused:
        return json_response(409, body);
    case reload_result::outcome::invalid:
        return json_response(422, body);
    default:
        return json_response(200, body);
    }
}

void add_cors(response& r, route rt, std::optional<std::string_view> origin) {
    if (rt != route::status && rt != route::metrics && rt != route::healthz)
        return;
    r.headers.emplace_back("Vary", "Origin");
    if (origin && is_loopback_origin(*origin))
        r.headers.emplace_back("Access-Control-Allow-Origin", std::string(*origin));
}

response cloud_control(bool cloud_configured) {
    if (!cloud_configured)
        return error_response(409, "cloud is not configured");
    return json_response(202, {{"ok", true}});
}

} // namespace lanesync::agent::api
