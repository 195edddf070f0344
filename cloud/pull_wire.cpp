// The sync-pull request and the defensive reading of its answer (cloud/pull_wire.hpp).
#include "cloud/pull_wire.hpp"

#include "cloud/policy.hpp"
#include "cloud/wire.hpp"
#include "protocol/message.hpp"

#include <nlohmann/json.hpp>

#include <set>

namespace lanesync::cloud::pull {
namespace {

using json = nlohmann::json;

/// Thrown inside parse_response() for the first problem; caught there.
struct malformed {
    std::string why;
};

[[noreturn]] void bad(std::string why) {
    throw malformed{std::move(why)};
}

std::int64_t integer(const json& obj, const char* name, const std::string& where,
                     std::optional<std::int64_t> fallback = std::nullopt) {
    auto it = obj.find(name);
    if (it == obj.end() || it->is_null()) {
        if (fallback)
            return *fallback;
        bad(where + ": \"" + name + "\" is missing");
    }
    if (!it->is_number_integer())
        bad(where + ": \"" + name + "\" is not an integer");
    if (it->is_number_unsigned() && it->get<std::uint64_t>() > std::uint64_t(max_safe_integer))
        bad(where + ": \"" + name + "\" is out of range");
    auto v = it->get<std::int64_t>();
    if (v < 0 || v > max_safe_integer)
        bad(where + ": \"" + name + "\" is out of range");
    return v;
}

bool boolean(const json& obj, const char* name, const std::string& where,
             std::optional<bool> fallback = std::nullopt) {
    auto it = obj.find(name);
    if (it == obj.end() || it->is_null()) {
        if (fallback)
            return *fallback;
        bad(where + ": \"" + name + "\" is missing");
    }
    if (!it->is_boolean())
        bad(where + ": \"" + name + "\" is not true or false");
    return it->get<bool>();
}

std::string text(const json& obj, const char* name, const std::string& where,
                 std::optional<std::string> fallback = std::nullopt) {
    auto it = obj.find(name);
    if (it == obj.end() || it->is_null()) {
        if (fallback)
            return *fallback;
        bad(where + ": \"" + name + "\" is missing");
    }
    if (!it->is_string())
        bad(where + ": \"" + name + "\" is not a string");
    return it->get<std::string>();
}

protocol::catalog_change read_change(const json& c, const std::string& scope, std::size_t i) {
    const std::string where = "scope '" + scope + "' change " + std::to_string(i);
    if (!c.is_object())
        bad(where + " is not an object");
    protocol::catalog_change out;
    out.scope = scope;
    out.key = text(c, "key", where);
    if (!protocol::valid_catalog_key(out.key))
        bad(where + ": invalid key");
    out.version = integer(c, "version", where);
    if (out.version <= 0)
        bad(where + ": version must be > 0");
    out.deleted = boolean(c, "deleted", where, false);
    out.changed_at_ms = integer(c, "changed_at_ms", where, 0);
    auto data = c.find("data");
    if (out.deleted) {
        out.data = "null";
    } else {
        if (data == c.end() || data->is_null())
            bad(where + ": an upsert without data");
        if (protocol::json_too_deep(*data))
            bad(where + ": data nests too deep");
        out.data = protocol::canonical_json(*data);
    }
    return out;
}

scope_answer read_scope(const json& s, std::size_t i) {
    if (!s.is_object())
        bad("scopes[" + std::to_string(i) + "] is not an object");
    scope_answer out;
    auto& p = out.page;
    p.scope = text(s, "scope", "scopes[" + std::to_string(i) + "]");
    if (!protocol::valid_catalog_scope(p.scope))
        bad("scopes[" + std::to_string(i) + "]: invalid scope name");
    const std::string where = "scope '" + p.scope + "'";
    p.reset = boolean(s, "reset", where, false);
    p.continues_snapshot = boolean(s, "continues_snapshot", where, false);
    if (p.reset && p.continues_snapshot)
        bad(where + ": both reset and continues_snapshot");
    p.resume = text(s, "resume", where, std::string());
    if (p.resume.size() > 4096)
        bad(where + ": resume token longer than 4096 bytes");
    p.through = integer(s, "through", where);
    p.head = integer(s, "head", where, 0);
    out.horizon = integer(s, "horizon", where, 0);
    out.more = boolean(s, "more", where);
    p.done = !out.more;
    const bool snapshot = p.reset || p.continues_snapshot;
    if (snapshot && out.more && p.resume.empty())
        bad(where + ": a snapshot page with more but no resume token");
    auto changes = s.find("changes");
    if (changes == s.end() || !changes->is_array())
        bad(where + ": \"changes\" is not an array");
    p.changes.reserve(changes->size());
    for (std::size_t k = 0; k < changes->size(); ++k) {
        p.changes.push_back(read_change((*changes)[k], p.scope, k));
        if (!snapshot && p.changes.back().version > p.through)
            bad(where + ": change version " + std::to_string(p.changes.back().version) +
                " above through " + std::to_string(p.through));
    }
    return out;
}

} // namespace

bool response::more() const {
    for (const auto& s : scopes)
        if (s.more)
            return true;
    return false;
}

std::string encode_request(std::string_view store_id, std::string_view terminal_id,
                           std::size_t limit, const std::vector<cursor>& cursors) {
    json cur = json::object();
    for (const auto& c : cursors) {
        json one = {{"through", c.through}};
        if (!c.resume.empty())
            one["resume"] = c.resume;
        cur[c.scope] = std::move(one);
    }
    json body = {{"store_id", std::string(store_id)},
                 {"terminal_id", std::string(terminal_id)},
                 {"limit", limit},
                 {"cursors", std::move(cur)}};
    return body.dump();
}

parsed parse_response(std::string_view body) {
    parsed out;
    auto doc = json::parse(body, nullptr, false);
    if (doc.is_discarded())
        return {std::nullopt, "the answer is not JSON"};
    if (!doc.is_object())
        return {std::nullopt, "the answer is not a JSON object"};
    try {
        response r;
        r.head = integer(doc, "head", "answer");
        auto scopes = doc.find("scopes");
        if (scopes == doc.end() || !scopes->is_array())
            bad("answer: \"scopes\" is not an array");
        std::set<std::string> seen;
        for (std::size_t i = 0; i < scopes->size(); ++i) {
            auto s = read_scope((*scopes)[i], i);
            if (!seen.insert(s.page.scope).second)
                bad("scope '" + s.page.scope + "' answered twice");
            r.scopes.push_back(std::move(s));
        }
        out.value = std::move(r);
    } catch (const malformed& m) {
        out.error = m.why;
    }
    return out;
}

outcome read_result(const http_result& r) {
    outcome out;
    out.http_status = r.status;
    if (r.fail == http_result::failure::cancelled) {
        out.k = outcome::kind::cancelled;
        out.label = "cancelled";
        out.error = "cancelled";
        return out;
    }
    if (r.fail != http_result::failure::none) {
        out.k = outcome::kind::retry;
        out.label = outcome_label(r.fail);
        out.error = r.error;
        return out;
    }
    if (r.status == 200) {
        auto p = parse_response(r.body);
        if (p.value) {
            out.k = outcome::kind::ok;
            out.label = "ok";
            out.value = std::move(p.value);
            return out;
        }
        out.k = outcome::kind::retry;
        out.label = "malformed";
        out.error = "malformed sync-pull answer: " + p.error;
        return out;
    }
    auto why = wire::error_text(r.body, 200);
    out.error = "HTTP " + std::to_string(r.status) + (why.empty() ? std::string() : ": " + why);
    out.label = "http_error";
    if (r.status == 401 || r.status == 403)
        out.k = outcome::kind::auth_error;
    else if (r.status == 400)
        out.k = outcome::kind::bad_request;
    else
        out.k = is_transient(r.status) ? outcome::kind::retry : outcome::kind::bad_request;
    return out;
}

} // namespace lanesync::cloud::pull
