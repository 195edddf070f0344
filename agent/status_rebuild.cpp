// The rebuild and origins parts of the status document (docs/api.md "GET /v1/status"), shared
// by /v1/status, /healthz, the publish 503 and `lanesync rebuild`.
#include "agent/status.hpp"
#include "agent/views.hpp"

#include "base/log.hpp"

namespace lanesync::agent {

using nlohmann::json;

namespace {

json strings(const std::vector<std::string>& v) {
    json a = json::array();
    for (const auto& s : v)
        a.push_back(log::redact(s));
    return a;
}

json null_if_empty(const std::string& s) {
    return s.empty() ? json(nullptr) : json(s);
}

std::string text_of(const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

} // namespace

std::string rebuild_text(const json& rb) {
    if (!rb.is_object())
        return "rebuild state unknown\n";
    std::string out;
    if (rb.value("active", false) != true) {
        out = "not rebuilding";
        if (auto inc = text_of(rb, "incarnation"); !inc.empty())
            out += " (incarnation " + inc + ")";
        out += "\n";
        if (rb.contains("trust_caps") && rb["trust_caps"].is_object())
            for (auto it = rb["trust_caps"].begin(); it != rb["trust_caps"].end(); ++it)
                out += "excluded from an earlier rebuild: " + it.key() +
                       " (its marks of this lane above seq " + it.value().dump() +
                       " are refused)\n";
        return out;
    }
    out += text_of(rb, "progress") + "\n";
    out += "reason: " + text_of(rb, "reason") + "\n";
    if (auto w = list_text(rb.value("waiting_for", json::array())); !w.empty())
        out +=
            "waiting for: " + w + " (lanesync rebuild --env FILE --without PEER leaves one out)\n";
    if (auto e = list_text(rb.value("excluded", json::array())); !e.empty())
        out += "excluded: " + e + "\n";
    for (const auto& c : rb.value("conflicts", json::array()))
        if (c.is_string())
            out += "conflict: " + c.get<std::string>() + "\n";
    return out;
}

json rebuild_json(const lanes::rebuild_view& v) {
    json caps = json::object();
    for (const auto& [t, cap] : v.trust_caps)
        caps[t] = cap;
    if (!v.active)
        return {{"active", false},
                {"start_check", v.start_check},
                {"incarnation", null_if_empty(v.incarnation)},
                {"trust_caps", std::move(caps)}};
    return {{"active", true},
            {"reason", v.reason},
            {"since_ms", v.since_ms},
            {"restored", v.restored},
            {"target", v.target},
            {"from", null_if_empty(v.from)},
            {"waiting_for", strings(v.waiting_for)},
            {"excluded", strings(v.excluded)},
            {"conflicts", strings(v.conflicts)},
            {"progress", v.progress},
            {"incarnation", null_if_empty(v.incarnation)},
            {"trust_caps", std::move(caps)}};
}

lanes::rebuild_view rebuild_view_of(const outbox::rebuild_state& st) {
    lanes::rebuild_view v;
    v.active = st.active;
    v.reason = st.reason;
    v.since_ms = st.since_ms;
    v.incarnation = st.incarnation;
    v.trust_caps = st.excluded;
    if (st.active)
        v.progress = "rebuilding (agent not running)";
    return v;
}

json origins_json(const std::vector<lanes::origin_view>& origins) {
    json a = json::array();
    for (const auto& o : origins)
        a.push_back({{"origin", o.origin},
                     {"own", o.own},
                     {"hwm", o.hwm},
                     {"held", o.held},
                     {"cloud_through", o.cloud_through},
                     {"covered_by", null_if_empty(o.covered_by)},
                     {"last_seen_ms", o.last_seen_ms ? json(*o.last_seen_ms) : json(nullptr)}});
    return a;
}

} // namespace lanesync::agent
