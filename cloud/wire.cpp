#include "cloud/wire.hpp"

#include "base/text.hpp"
#include "protocol/message.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

namespace lanesync::cloud::wire {
namespace {

std::string one_line(std::string s, std::size_t max) {
    for (auto& c : s)
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
    if (s.size() > max) {
        s.resize(max);
        // Do not leave half a UTF-8 sequence at the end.
        while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80)
            s.pop_back();
        if (!s.empty() && (static_cast<unsigned char>(s.back()) & 0x80))
            s.pop_back();
        s += "...";
    }
    return s;
}

/// The highestSeq of a 200 answer for this lane; nullopt when it is anything else.
std::optional<std::uint64_t> decode_highest_seq(std::string_view body, std::string_view store_id,
                                                std::string_view terminal_id) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_object())
        return std::nullopt;
    auto text = [&](const char* key) {
        auto it = j.find(key);
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    if (text("storeId") != store_id || text("terminalId") != terminal_id)
        return std::nullopt;
    auto n = j.find("highestSeq");
    if (n == j.end() || !n->is_number_unsigned())
        return std::nullopt;
    auto v = n->get<std::uint64_t>();
    if (v > (std::uint64_t{1} << 53))
        return std::nullopt;
    return v;
}

} // namespace

std::string endpoint::origin() const {
    std::string out = tls ? "https://" : "http://";
    bool v6 = host.find(':') != std::string::npos;
    out += v6 ? "[" + host + "]" : host;
    out += ":" + std::to_string(port);
    return out;
}

endpoint make_endpoint(const conf::cloud_url& url, std::string_view function) {
    endpoint ep;
    ep.tls = url.tls;
    ep.host = url.host;
    ep.port = url.port;
    ep.host_is_ip = url.host_is_ip;
    ep.target = url.base_path + "/functions/v1/" + std::string(function);
    bool v6 = url.host.find(':') != std::string::npos;
    std::string host_text = v6 ? "[" + url.host + "]" : url.host;
    bool default_port = ep.port == (ep.tls ? 443 : 80);
    ep.host_header = default_port ? host_text : host_text + ":" + std::to_string(ep.port);
    return ep;
}

std::optional<std::string> encode_message(const outbox::record& rec, std::string_view store_id,
                                          std::string_view uploaded_by) {
    const auto& m = rec.msg;
    // A covered replica has no peer_acked_at of its own: it has been on two disks (its origin's
    // and this lane's) since this lane stored it.
    auto acked_at = rec.peer_acked_at_ms;
    if (!acked_at && !uploaded_by.empty())
        acked_at = rec.stored_at_ms;
    auto data = nlohmann::json::parse(m.data, nullptr, false);
    if (data.is_discarded() || !data.is_object())
        return std::nullopt;
    nlohmann::json j = {
        {"messageId", m.id},
        {"storeId", std::string(store_id)},
        {"terminalId", m.origin},
        {"seq", m.seq},
        {"topic", m.topic},
        {"priority", std::string(protocol::to_string(m.prio))},
        {"data", std::move(data)},
        {"timestamp", protocol::format_time_ms(m.created_at_ms)},
        {"peerAckedAt",
         acked_at ? nlohmann::json(protocol::format_time_ms(*acked_at)) : nlohmann::json(nullptr)},
    };
    if (!uploaded_by.empty())
        j["uploadedBy"] = std::string(uploaded_by);
    // Invalid UTF-8 cannot come from the outbox (data is canonical JSON); replace, never throw.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {
constexpr std::string_view lane_key = R"(,"lane":)";
}

std::size_t wrapped_size(std::size_t parts_bytes, std::size_t parts, std::size_t lane_bytes) {
    static constexpr std::string_view head = R"({"messages":[)";
    static constexpr std::string_view tail = "]}";
    return head.size() + parts_bytes + (parts > 0 ? parts - 1 : 0) + tail.size() +
           (lane_bytes > 0 ? lane_key.size() + lane_bytes : 0);
}

std::string wrap_messages(const std::vector<std::string>& parts, std::string_view lane) {
    std::size_t bytes = 0;
    for (const auto& p : parts)
        bytes += p.size();
    std::string out;
    out.reserve(wrapped_size(bytes, parts.size(), lane.size()));
    out += R"({"messages":[)";
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i)
            out += ',';
        out += parts[i];
    }
    out += ']';
    if (!lane.empty()) {
        out += lane_key;
        out += lane;
    }
    out += '}';
    return out;
}

lane_summary summarize(const outbox::counts& c, std::int64_t now_ms) {
    auto age = [now_ms](const std::optional<std::int64_t>& since) -> std::optional<std::int64_t> {
        if (!since)
            return std::nullopt;
        return std::max<std::int64_t>(0, now_ms - *since);
    };
    lane_summary s;
    s.at_ms = now_ms;
    s.pending = c.pending;
    s.peer_ack = c.peer_ack;
    s.cloud_ack = c.cloud_ack;
    s.failed = c.failed;
    s.oldest_pending_age_ms = age(c.oldest_pending_stored_at_ms);
    s.oldest_peer_ack_age_ms = age(c.oldest_peer_ack_at_ms);
    s.last_seq = c.own_last_seq;
    return s;
}

std::string encode_lane(const lane_summary& s, std::string_view store_id,
                        std::string_view terminal_id) {
    auto or_null = [](const std::optional<std::int64_t>& v) -> nlohmann::ordered_json {
        return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
    };
    const nlohmann::ordered_json j = {{"storeId", store_id},
                                      {"terminalId", terminal_id},
                                      {"agentVersion", LANESYNC_VERSION},
                                      {"at", s.at_ms},
                                      {"pending", s.pending},
                                      {"peerAck", s.peer_ack},
                                      {"cloudAck", s.cloud_ack},
                                      {"failed", s.failed},
                                      {"oldestPendingAgeMs", or_null(s.oldest_pending_age_ms)},
                                      {"oldestPeerAckAgeMs", or_null(s.oldest_peer_ack_age_ms)},
                                      {"lastSeq", s.last_seq},
                                      {"peersUp", s.peers_up},
                                      {"peersConfigured", s.peers_configured},
                                      {"retryDepth", s.retry_depth}};
    return j.dump();
}

std::string decoded::problem() const {
    if (!parsed)
        return "the answer is not a JSON object with a \"results\" array";
    std::string out;
    auto add = [&](std::size_t n, std::string_view what) {
        if (n == 0)
            return;
        if (!out.empty())
            out += ", ";
        out += std::to_string(n) + " " + std::string(what);
    };
    if (!missing.empty())
        add(missing.size(),
            "of " + std::to_string(batch_size) + " messages without a usable result");
    add(unknown_ids, "results for ids not in the batch");
    add(malformed, "malformed results");
    add(conflicting, "ids answered twice, differently");
    return out;
}

decoded decode_results(std::string_view body, const std::vector<std::string>& batch_ids) {
    decoded out;
    out.batch_size = batch_ids.size();
    // Batch ids by their lowercase form (Postgres prints uuids in lowercase; ours are too).
    std::map<std::string, std::string> wanted;
    for (const auto& id : batch_ids)
        wanted.emplace(text::lower(id), id);

    auto doc = nlohmann::json::parse(body, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("results") ||
        !doc["results"].is_array()) {
        out.missing = batch_ids;
        return out;
    }
    out.parsed = true;

    // First pass: one candidate per id; a second, different answer makes the id conflicting.
    std::map<std::string, std::optional<outbox::cloud_result>> seen; // nullopt = conflicting
    for (const auto& r : doc["results"]) {
        if (!r.is_object() || !r.contains("messageId") || !r["messageId"].is_string() ||
            !r.contains("status") || !r["status"].is_string()) {
            ++out.malformed;
            continue;
        }
        outbox::cloud_result cr;
        auto status = r["status"].get<std::string>();
        if (status == "stored")
            cr.k = outbox::cloud_result::stored;
        else if (status == "duplicate")
            cr.k = outbox::cloud_result::duplicate;
        else if (status == "rejected")
            cr.k = outbox::cloud_result::rejected;
        else {
            ++out.malformed;
            continue;
        }
        auto key = text::lower(r["messageId"].get<std::string>());
        auto it = wanted.find(key);
        if (it == wanted.end()) {
            ++out.unknown_ids;
            continue;
        }
        cr.id = it->second;
        if (cr.k == outbox::cloud_result::rejected) {
            std::string reason;
            if (r.contains("error") && r["error"].is_string())
                reason = r["error"].get<std::string>();
            cr.error =
                reason.empty() ? std::string("rejected by the cloud") : one_line(reason, 500);
        }
        auto [pos, fresh] = seen.emplace(key, cr);
        if (!fresh && pos->second && (pos->second->k != cr.k || pos->second->error != cr.error)) {
            pos->second.reset();
            ++out.conflicting;
        }
    }
    for (const auto& id : batch_ids) {
        auto it = seen.find(text::lower(id));
        if (it == seen.end() || !it->second) {
            out.missing.push_back(id);
            continue;
        }
        if (it->second->k == outbox::cloud_result::rejected)
            ++out.rejected;
        out.results.push_back(*it->second);
        seen.erase(it); // an id listed twice in the batch is answered once
    }
    return out;
}

std::string error_text(std::string_view body, std::size_t max) {
    auto doc = nlohmann::json::parse(body, nullptr, false);
    if (doc.is_discarded() || !doc.is_object())
        return {};
    for (const char* key : {"error", "message", "msg"}) {
        if (doc.contains(key) && doc[key].is_string()) {
            auto s = doc[key].get<std::string>();
            if (!s.empty())
                return one_line(std::move(s), max);
        }
    }
    return {};
}

std::string highest_seq_target(const endpoint& ep, std::string_view store_id,
                               std::string_view terminal_id) {
    return ep.target + "?storeId=" + std::string(store_id) +
           "&terminalId=" + std::string(terminal_id);
}

highest_seq_answer read_highest_seq(const http_result& r, std::string_view store_id,
                                    std::string_view terminal_id) {
    if (r.fail != http_result::failure::none)
        return {std::nullopt, r.error};
    if (r.status != 200) {
        auto why = error_text(r.body, 200);
        return {std::nullopt,
                "HTTP " + std::to_string(r.status) + (why.empty() ? std::string() : ": " + why)};
    }
    if (auto seq = decode_highest_seq(r.body, store_id, terminal_id))
        return {seq, {}};
    return {std::nullopt, "malformed answer (want {storeId, terminalId, highestSeq})"};
}

} // namespace lanesync::cloud::wire
