// The pure half of the catalog routes (agent/api_catalog.hpp).
#include "agent/api_catalog.hpp"

#include "base/tuning.hpp"
#include "protocol/message.hpp"

#include <algorithm>
#include <charconv>

namespace lanesync::agent::api {
namespace {

using nlohmann::json;

constexpr std::int64_t max_version = 9'007'199'254'740'992; // 2^53

std::optional<std::int64_t> whole(const std::string& v, std::int64_t lo, std::int64_t hi) {
    long long n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc{} || p != v.data() + v.size() || n < lo || n > hi)
        return std::nullopt;
    return n;
}

json data_of(const protocol::catalog_change& c) {
    auto j = json::parse(c.data, nullptr, false);
    return j.is_discarded() ? json(nullptr) : j;
}

json change_json(const protocol::catalog_change& c) {
    return {{"key", c.key},
            {"version", c.version},
            {"deleted", c.deleted},
            {"data", c.deleted ? json(nullptr) : data_of(c)},
            {"changed_at", c.changed_at_ms > 0 ? json(protocol::format_time_ms(c.changed_at_ms))
                                               : json(nullptr)}};
}

std::string held_names(const std::vector<protocol::catalog_scope_state>& held) {
    std::string out;
    for (const auto& s : held)
        out += (out.empty() ? "" : ", ") + s.scope;
    return out.empty() ? "none yet" : out;
}

} // namespace

std::variant<catalog_key, response> check_catalog_path(std::string_view rest) {
    auto slash = rest.find('/');
    if (slash == std::string_view::npos)
        return error_response(400, "the path must be /v1/catalog/{scope}/{key}");
    catalog_key k{std::string(rest.substr(0, slash)), std::string(rest.substr(slash + 1))};
    if (!protocol::valid_catalog_scope(k.scope))
        return error_response(400, "invalid scope '" + echo(k.scope) +
                                       "' (1 to 64 characters of a-z 0-9 _ . -)");
    if (!protocol::valid_catalog_key(k.key))
        return error_response(400, "invalid key (1 to 256 bytes, no control characters)");
    return k;
}

std::variant<protocol::catalog_scope_state, response>
held_scope(const std::string& scope, const std::vector<protocol::catalog_scope_state>& held) {
    for (const auto& s : held)
        if (s.scope == scope)
            return s;
    return error_response(400,
                          "unknown scope '" + echo(scope) + "' (held: " + held_names(held) + ")");
}

response catalog_answer(const catalog_key& k,
                        const std::vector<protocol::catalog_scope_state>& held,
                        const std::optional<protocol::catalog_change>& row) {
    auto st = held_scope(k.scope, held);
    if (auto* r = std::get_if<response>(&st))
        return std::move(*r);
    if (!row || row->deleted)
        return error_response(404, "no such key in scope '" + k.scope + "': " + echo(k.key),
                              {{"deleted", row.has_value()}});
    json j = change_json(*row);
    j.erase("deleted");
    j["scope"] = k.scope;
    j["through"] = std::get<protocol::catalog_scope_state>(st).through;
    return json_response(200, j);
}

std::variant<changes_query, response> check_changes(const target& t) {
    changes_query q;
    bool seen_scope = false, seen_since = false, seen_limit = false, seen_timeout = false;
    auto twice = [](const std::string& k) { return error_response(400, k + " given twice"); };
    for (const auto& [k, v] : t.query) {
        if (k == "scope") {
            if (seen_scope)
                return twice(k);
            seen_scope = true;
            if (!protocol::valid_catalog_scope(v))
                return error_response(400, "invalid scope '" + echo(v) +
                                               "' (1 to 64 characters of a-z 0-9 _ . -)");
            q.scope = v;
        } else if (k == "since") {
            if (seen_since)
                return twice(k);
            seen_since = true;
            auto n = whole(v, 0, max_version);
            if (!n)
                return error_response(400, "since must be a version from 0 to 9007199254740992");
            q.since = *n;
        } else if (k == "limit") {
            if (seen_limit)
                return twice(k);
            seen_limit = true;
            auto n = whole(v, 1, static_cast<std::int64_t>(changes_max_limit));
            if (!n)
                return error_response(400, "limit must be an integer from 1 to " +
                                               std::to_string(changes_max_limit));
            q.limit = static_cast<std::size_t>(*n);
        } else if (k == "timeout_ms") {
            if (seen_timeout)
                return twice(k);
            seen_timeout = true;
            auto n = whole(v, 1, tuning::api_wait_max.count());
            if (!n)
                return error_response(400, "timeout_ms must be an integer from 1 to " +
                                               std::to_string(tuning::api_wait_max.count()));
            q.timeout = std::chrono::milliseconds(*n);
        } else {
            return error_response(400, "unknown query parameter: " + echo(k));
        }
    }
    if (!seen_scope)
        return error_response(400, "scope is required (e.g. /v1/changes?scope=prices&since=0)");
    return q;
}

response changes_answer(const changes_query& q, const protocol::catalog_scope_state& st,
                        const std::vector<protocol::catalog_change>& rows) {
    json changes = json::array();
    for (const auto& c : rows)
        changes.push_back(change_json(c));
    return json_response(200, {{"scope", q.scope},
                               {"since", q.since},
                               {"through", st.through},
                               {"head", st.head},
                               {"behind", std::max<std::int64_t>(0, st.head - st.through)},
                               {"snapshot_active", st.snapshot_active},
                               {"changes", std::move(changes)},
                               {"next_since", rows.empty() ? q.since : rows.back().version},
                               {"more", rows.size() >= q.limit}});
}

} // namespace lanesync::agent::api
