#include "protocol/publish.hpp"

#include <nlohmann/json.hpp>

namespace lanesync::protocol {
namespace {

using R = result<publish_request>;

/// A field name fit to echo in an error: short printable ASCII, else a placeholder (never cut
/// inside a UTF-8 sequence).
std::string printable_name(const std::string& k) {
    if (k.size() > 64)
        return "(a long field name)";
    for (unsigned char c : k)
        if (c < 0x20 || c > 0x7e)
            return "(a field name with non-ASCII characters)";
    return k;
}

R check_parts(const nlohmann::json* topic, const nlohmann::json* data, const nlohmann::json* id,
              const nlohmann::json* prio) {
    publish_request req;
    if (!topic)
        return R::failure("missing field: topic");
    if (!topic->is_string())
        return R::failure("topic must be a string");
    const auto& t = topic->get_ref<const std::string&>();
    if (!valid_topic(t))
        return R::failure("topic must be 1-64 characters of [a-z0-9_.-]");
    req.topic = t;
    if (!data)
        return R::failure("missing field: data");
    if (!data->is_object())
        return R::failure("data must be a JSON object");
    if (json_too_deep(*data))
        return R::failure("data nests deeper than " + std::to_string(max_json_depth) + " levels");
    req.data = canonical_json(*data);
    if (id && !id->is_null()) {
        if (!id->is_string())
            return R::failure("id must be a string");
        const auto& s = id->get_ref<const std::string&>();
        if (!valid_uuid(s))
            return R::failure("id must be a UUID (8-4-4-4-12 hex digits)");
        req.id = normalize_uuid(s);
    }
    if (prio && !prio->is_null()) {
        if (!prio->is_string())
            return R::failure("priority must be a string");
        auto p = parse_priority(prio->get_ref<const std::string&>());
        if (!p)
            return R::failure("priority must be one of critical, high, normal, low");
        req.prio = *p;
        req.prio_given = true;
    }
    return req;
}

/// One message object: no unknown field, then the field rules.
R check_object(const nlohmann::json& j) {
    if (!j.is_object())
        return R::failure("body must be a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
        const auto& k = it.key();
        if (k != "topic" && k != "data" && k != "id" && k != "priority")
            return R::failure("unknown field: " + printable_name(k));
    }
    auto field = [&](const char* name) -> const nlohmann::json* {
        auto it = j.find(name);
        return it == j.end() ? nullptr : &*it;
    };
    return check_parts(field("topic"), field("data"), field("id"), field("priority"));
}

result<publish_body> check_batch(const nlohmann::json& j, std::size_t max_batch) {
    using B = result<publish_body>;
    for (auto it = j.begin(); it != j.end(); ++it)
        if (it.key() != "messages")
            return B::failure("unknown field: " + printable_name(it.key()) +
                              " (a batch body has only \"messages\")");
    const auto& list = j.at("messages");
    if (!list.is_array() || list.empty())
        return B::failure("messages must be a non-empty array of message objects");
    publish_body out;
    out.batch = true;
    out.batch_size = list.size();
    if (out.batch_size > max_batch)
        return out;
    out.requests.reserve(list.size());
    for (std::size_t i = 0; i < list.size(); ++i) {
        auto req = check_object(list[i]);
        if (!req) {
            auto why = req.error();
            if (why == "body must be a JSON object")
                why = "message must be a JSON object";
            out.errors.push_back({i, std::move(why)});
        } else {
            out.requests.push_back(std::move(req.value()));
        }
    }
    return out;
}

} // namespace

result<publish_request> parse_publish_request(std::string_view body) {
    nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded())
        return R::failure("body is not valid JSON");
    return check_object(j);
}

result<publish_body> parse_publish_body(std::string_view body, std::size_t max_batch) {
    using B = result<publish_body>;
    nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded())
        return B::failure("body is not valid JSON");
    if (j.is_object() && j.contains("messages"))
        return check_batch(j, max_batch);
    auto req = check_object(j);
    if (!req)
        return B::failure(req.error());
    publish_body out;
    out.requests.push_back(std::move(req.value()));
    return out;
}

result<publish_request> make_publish_request(std::string_view topic, std::string_view data_json,
                                             std::optional<std::string_view> id,
                                             std::optional<std::string_view> prio) {
    nlohmann::json t = std::string(topic);
    nlohmann::json d = nlohmann::json::parse(data_json, nullptr, false);
    if (d.is_discarded())
        return R::failure("data is not valid JSON");
    nlohmann::json i, p;
    if (id)
        i = std::string(*id);
    if (prio)
        p = std::string(*prio);
    return check_parts(&t, &d, id ? &i : nullptr, prio ? &p : nullptr);
}

void apply_topic_priority(publish_request& req, const topic_priorities& defaults) {
    if (req.prio_given)
        return;
    auto it = defaults.find(req.topic);
    req.prio = it == defaults.end() ? priority::normal : it->second;
}

} // namespace lanesync::protocol
