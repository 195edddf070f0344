// The status document's `pull` and `catalog` parts (agent/status_catalog.hpp).
#include "agent/status_catalog.hpp"

#include "protocol/message.hpp"

#include <algorithm>

namespace lanesync::agent {
namespace {

using nlohmann::json;

/// ISO-8601, or null when unset or 0 (a scope never applied).
json time_or_null_if_zero(const std::optional<std::int64_t>& ms) {
    return ms && *ms > 0 ? json(protocol::format_time_ms(*ms)) : json(nullptr);
}

std::string cell(const json& j) {
    if (j.is_null())
        return "-";
    if (j.is_string())
        return j.get<std::string>();
    return j.dump();
}

const json& field(const json& j, const char* key) {
    static const json null_value;
    if (!j.is_object())
        return null_value;
    auto it = j.find(key);
    return it == j.end() ? null_value : *it;
}

} // namespace

json catalog_json(const std::vector<protocol::catalog_scope_state>& scopes) {
    json out = json::array();
    for (const auto& s : scopes)
        out.push_back({{"scope", s.scope},
                       {"through", s.through},
                       {"head", s.head},
                       {"behind", std::max<std::int64_t>(0, s.head - s.through)},
                       {"keys", s.keys},
                       {"applied_at", time_or_null_if_zero(s.applied_at_ms)},
                       {"snapshot_active", s.snapshot_active},
                       {"horizon", s.horizon},
                       {"source", s.source.empty() ? json(nullptr) : json(s.source)}});
    return out;
}

json pull_json(const conf::config& cfg, const std::optional<cloud::pull_status>& p) {
    const bool on = cfg.cloud_enabled() && cfg.cloud_pull_interval.count() > 0;
    json j = {{"enabled", p ? p->enabled : on},
              {"state", p ? json(p->state) : json(on ? "on" : "off")},
              {"interval_ms", cfg.cloud_pull_interval.count()}};
    if (!p) {
        for (const char* k : {"last_ok_at", "last_attempt_at", "last_error", "next_attempt_at",
                              "consecutive_failures", "last_http_status"})
            j[k] = nullptr;
        return j;
    }
    j["last_ok_at"] = time_or_null_if_zero(p->last_ok_at_ms);
    j["last_attempt_at"] = time_or_null_if_zero(p->last_attempt_at_ms);
    j["last_error"] = p->last_error.empty() ? json(nullptr) : json(p->last_error);
    j["next_attempt_at"] = time_or_null_if_zero(p->next_attempt_at_ms);
    j["consecutive_failures"] = p->consecutive_failures;
    j["last_http_status"] = p->last_http_status ? json(*p->last_http_status) : json(nullptr);
    j["requests_ok"] = p->requests_ok;
    j["requests_failed"] = p->requests_failed;
    j["changes_applied"] = p->changes_applied;
    j["cloud_head"] = p->cloud_head;
    return j;
}

std::string catalog_lines(const json& s) {
    const json& cat = field(s, "catalog");
    const json& pull = field(s, "pull");
    const bool on = field(pull, "enabled") == true;
    if ((!cat.is_array() || cat.empty()) && !on)
        return {};
    std::string out = "\nPULL      " + cell(field(pull, "state")) + "   last ok " +
                      cell(field(pull, "last_ok_at")) + "   next " +
                      cell(field(pull, "next_attempt_at")) + "   last error " +
                      cell(field(pull, "last_error")) + "\n";
    if (!cat.is_array() || cat.empty())
        return out + "CATALOG   nothing held yet\n";
    std::vector<std::vector<std::string>> rows{
        {"SCOPE", "THROUGH", "HEAD", "BEHIND", "KEYS", "SNAPSHOT", "APPLIED", "SOURCE"}};
    for (const auto& c : cat)
        rows.push_back({cell(field(c, "scope")), cell(field(c, "through")), cell(field(c, "head")),
                        cell(field(c, "behind")), cell(field(c, "keys")),
                        field(c, "snapshot_active") == true ? "under way" : "-",
                        cell(field(c, "applied_at")), cell(field(c, "source"))});
    std::vector<std::size_t> width(rows[0].size(), 0);
    for (const auto& r : rows)
        for (std::size_t i = 0; i < r.size(); ++i)
            width[i] = std::max(width[i], r[i].size());
    out += "CATALOG\n";
    for (const auto& r : rows) {
        std::string line = "  ";
        for (std::size_t i = 0; i < r.size(); ++i)
            line += r[i] + (i + 1 < r.size() ? std::string(width[i] - r[i].size() + 2, ' ') : "");
        out += line + "\n";
    }
    return out;
}

} // namespace lanesync::agent
