#include "agent/views.hpp"

#include "protocol/message.hpp"

namespace lanesync::agent {

nlohmann::json time_or_null(const std::optional<std::int64_t>& unix_ms) {
    if (!unix_ms)
        return nullptr;
    return protocol::format_time_ms(*unix_ms);
}

nlohmann::json publish_json(const outbox::record& rec) {
    return {{"id", rec.msg.id},
            {"origin", rec.msg.origin},
            {"seq", rec.msg.seq},
            {"state", outbox::to_string(rec.st)},
            {"created_at", protocol::format_time_ms(rec.msg.created_at_ms)}};
}

nlohmann::json record_json(const outbox::record& rec) {
    // data is stored as canonical JSON text of an object; a row that somehow does not parse is
    // shown as a string rather than failing the whole answer.
    nlohmann::json data = nlohmann::json::parse(rec.msg.data, nullptr, false);
    if (data.is_discarded())
        data = rec.msg.data;
    nlohmann::json j = {{"id", rec.msg.id},
                        {"origin", rec.msg.origin},
                        {"seq", rec.msg.seq},
                        {"topic", rec.msg.topic},
                        {"priority", protocol::to_string(rec.msg.prio)},
                        {"state", outbox::to_string(rec.st)},
                        {"data", std::move(data)},
                        {"created_at", protocol::format_time_ms(rec.msg.created_at_ms)},
                        {"stored_at", protocol::format_time_ms(rec.stored_at_ms)},
                        {"peer_acked_at", time_or_null(rec.peer_acked_at_ms)},
                        {"cloud_acked_at", time_or_null(rec.cloud_acked_at_ms)},
                        {"attempts", rec.attempts},
                        {"own", rec.own}};
    j["last_error"] =
        rec.last_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(rec.last_error);
    return j;
}

std::string list_text(const nlohmann::json& a) {
    std::string out;
    if (a.is_array())
        for (const auto& x : a)
            if (x.is_string())
                out += (out.empty() ? "" : ", ") + x.get<std::string>();
    return out;
}

} // namespace lanesync::agent
