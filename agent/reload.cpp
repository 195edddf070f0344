#include "agent/reload.hpp"

#include "agent/views.hpp"
#include "protocol/message.hpp"

namespace lanesync::agent {

const char* to_string(reload_result::outcome o) {
    switch (o) {
    case reload_result::outcome::applied:
        return "applied";
    case reload_result::outcome::unchanged:
        return "unchanged";
    case reload_result::outcome::refused:
        return "refused";
    case reload_result::outcome::invalid:
        return "invalid";
    }
    return "unchanged";
}

reload_decision decide_reload(const conf::config& running, const std::optional<conf::loaded>& next,
                              const std::string& load_error) {
    reload_decision d;
    if (!next) {
        d.result.result = reload_result::outcome::invalid;
        d.result.error = load_error + " (the running configuration stays)";
        return d;
    }
    for (const auto& w : next->warnings)
        d.result.warnings.push_back(w.text);
    d.plan = conf::plan_reload(running, next->cfg);
    if (!d.plan.ok()) {
        d.result.result = reload_result::outcome::refused;
        d.result.error = conf::refusal_text(d.plan);
        return d;
    }
    d.result.changed = d.plan.changed;
    d.result.result = d.plan.changed.empty() ? reload_result::outcome::unchanged
                                             : reload_result::outcome::applied;
    return d;
}

nlohmann::json reload_json(const reload_result& r) {
    nlohmann::json j = {{"result", to_string(r.result)},
                        {"changed", r.changed},
                        {"trigger", r.trigger},
                        {"at_ms", r.at_ms}};
    if (!r.error.empty())
        j["error"] = r.error;
    if (!r.warnings.empty())
        j["warnings"] = r.warnings;
    return j;
}

std::string reload_line(const nlohmann::json& reload) {
    if (!reload.is_object() || !reload.contains("result"))
        return {};
    const auto str = [&](const char* k) {
        return reload.contains(k) && reload[k].is_string() ? reload[k].get<std::string>()
                                                           : std::string();
    };
    std::string out = "RELOAD: " + str("result");
    if (reload.contains("at_ms") && reload["at_ms"].is_number_integer())
        out += " at " + protocol::format_time_ms(reload["at_ms"].get<std::int64_t>());
    out += " (" + str("trigger") + ")";
    if (!str("error").empty())
        return out + ": " + str("error") + "\n";
    auto keys = list_text(reload.contains("changed") ? reload["changed"] : nullptr);
    return out + (keys.empty() ? "" : ": " + keys) + "\n";
}

} // namespace lanesync::agent
