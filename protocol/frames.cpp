#include "protocol/frames.hpp"
#include "protocol/frame_fields.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace lanesync::protocol {
namespace {

using json = nlohmann::json;
using detail::get_string;
using detail::policy;

bool valid_hex(std::string_view s, std::size_t min_len, std::size_t max_len) {
    if (s.size() < min_len || s.size() > max_len || s.size() % 2 != 0)
        return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    return true;
}

bool get_u64(const json& obj, const char* key, std::uint64_t& out, std::string& err) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_number_unsigned()) {
        // A non-negative integer written by a parser may be stored as number_integer.
        if (it != obj.end() && it->is_number_integer() && it->get<std::int64_t>() >= 0) {
            out = static_cast<std::uint64_t>(it->get<std::int64_t>());
            return true;
        }
        err = std::string("field ") + key + " must be a non-negative integer";
        return false;
    }
    out = it->get<std::uint64_t>();
    return true;
}

bool get_hwm(const json& obj, const char* key, const frame_limits& lim, hwm_map& out,
             std::string& err) {
    auto it = obj.find(key);
    if (it == obj.end()) {
        err = std::string("field ") + key + " is missing";
        return false;
    }
    if (!it->is_object()) {
        err = std::string("field ") + key + " must be an object";
        return false;
    }
    if (it->size() > lim.max_origins) {
        err = std::string("field ") + key + " has too many origins";
        return false;
    }
    for (auto e = it->begin(); e != it->end(); ++e) {
        if (!valid_terminal_id(e.key())) {
            err = std::string("field ") + key + " has an invalid origin id";
            return false;
        }
        if (!e->is_number_unsigned() && !(e->is_number_integer() && e->get<std::int64_t>() >= 0)) {
            err = std::string("field ") + key + " values must be non-negative integers";
            return false;
        }
        out[e.key()] = e->get<std::uint64_t>();
    }
    return true;
}

/// One v2 mark: {"seq": N, "id": "<uuid>"}; id omitted only when nothing is held there.
bool get_mark(const json& e, std::uint64_t& seq, std::string& id, std::string& err) {
    if (!e.is_object() || !get_u64(e, "seq", seq, err)) {
        err = "marks must be objects with a non-negative integer seq";
        return false;
    }
    auto it = e.find("id");
    if (it != e.end()) {
        if (!it->is_string() || !valid_uuid(it->get_ref<const std::string&>()) || seq == 0) {
            err = "mark id must be a UUID (and seq at least 1)";
            return false;
        }
        id = normalize_uuid(it->get_ref<const std::string&>());
    }
    if (e.size() != (it == e.end() ? 1u : 2u)) {
        err = "mark has unknown fields";
        return false;
    }
    return true;
}

/// A ready/ack mark map in either form: v1 numbers or v2 mark objects, never mixed.
bool get_marks(const json& obj, const frame_limits& lim, hwm_map& seqs, tip_ids& ids, bool& v2,
               std::string& err) {
    auto it = obj.find("hwm");
    v2 = it != obj.end() && it->is_object() && !it->empty() && it->begin()->is_object();
    if (!v2)
        return get_hwm(obj, "hwm", lim, seqs, err);
    if (it->size() > lim.max_origins) {
        err = "field hwm has too many origins";
        return false;
    }
    for (auto e = it->begin(); e != it->end(); ++e) {
        if (!valid_terminal_id(e.key()) || !e->is_object()) {
            err = e->is_object() ? "field hwm has an invalid origin id"
                                 : "field hwm mixes v1 and v2 marks";
            return false;
        }
        std::string id;
        if (!get_mark(*e, seqs[e.key()], id, err))
            return false;
        if (!id.empty())
            ids[e.key()] = std::move(id);
    }
    return true;
}

bool get_version(const json& obj, int& out, std::string& err) {
    auto it = obj.find("v");
    if (it == obj.end() || !it->is_number_integer()) {
        err = "field v must be an integer";
        return false;
    }
    auto v = it->get<std::int64_t>();
    if (v < 0 || v > 1'000'000) {
        err = "field v out of range";
        return false;
    }
    out = static_cast<int>(v);
    return true;
}

/// Decodes one message object of a batch frame.
bool decode_message(const json& m, const frame_limits& lim, message& out, std::string& err) {
    if (!m.is_object()) {
        err = "batch messages must be objects";
        return false;
    }
    const std::string* s = get_string(m, "id", err);
    if (!s)
        return false;
    if (!valid_uuid(*s)) {
        err = "message id must be a UUID";
        return false;
    }
    out.id = normalize_uuid(*s);
    if (!(s = get_string(m, "origin", err)))
        return false;
    if (!valid_terminal_id(*s)) {
        err = "message origin is not a valid terminal id";
        return false;
    }
    out.origin = *s;
    if (!get_u64(m, "seq", out.seq, err))
        return false;
    if (out.seq == 0 ||
        out.seq > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        err = "message seq must be between 1 and 2^63-1";
        return false;
    }
    if (!(s = get_string(m, "topic", err)))
        return false;
    if (!valid_topic(*s)) {
        err = "message topic is invalid";
        return false;
    }
    out.topic = *s;
    if (!(s = get_string(m, "priority", err)))
        return false;
    auto p = parse_priority(*s);
    if (!p) {
        err = "message priority is invalid";
        return false;
    }
    out.prio = *p;
    auto d = m.find("data");
    if (d == m.end() || !d->is_object()) {
        err = "message data must be an object";
        return false;
    }
    if (json_too_deep(*d)) {
        err = "message data nests too deep";
        return false;
    }
    out.data = canonical_json(*d);
    if (out.data.size() > lim.max_message_bytes) {
        err = "message data over the size limit";
        return false;
    }
    auto c = m.find("created_at");
    if (c == m.end() || !c->is_number_integer() ||
        (c->is_number_unsigned() &&
         c->get<std::uint64_t>() >
             static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))) {
        err = "message created_at must be an integer (unix ms)";
        return false;
    }
    out.created_at_ms = c->get<std::int64_t>();
    if (m.size() != 7) {
        err = "message has unknown fields";
        return false;
    }
    return true;
}

json hwm_json(const hwm_map& h) {
    json j = json::object();
    for (const auto& [k, v] : h)
        j[k] = v;
    return j;
}

/// Marks in the frame's form: v1 numbers, or v2 objects naming the tip id.
json marks_json(const hwm_map& h, const tip_ids& ids, bool v2) {
    if (!v2)
        return hwm_json(h);
    json j = json::object();
    for (const auto& [k, v] : h) {
        json m{{"seq", v}};
        if (auto it = ids.find(k); it != ids.end() && v > 0)
            m["id"] = it->second;
        j[k] = std::move(m);
    }
    return j;
}

std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::strict);
}

} // namespace

namespace {

// One decoder per frame type; each checks every field and refuses unknown ones.

decode_result decode_hello_or_challenge(const json& j, bool challenge) {
    std::string err;
    int v = 0;
    if (!get_version(j, v, err))
        return policy(err);
    const std::string* store = get_string(j, "store", err);
    const std::string* term = store ? get_string(j, "terminal", err) : nullptr;
    const std::string* nonce = term ? get_string(j, "nonce", err) : nullptr;
    if (!nonce)
        return policy(err);
    if (!valid_store_id(*store))
        return policy("invalid store id");
    if (!valid_terminal_id(*term))
        return policy("invalid terminal id");
    if (!valid_hex(*nonce, 32, 128))
        return policy("nonce must be 16-64 bytes of lowercase hex");
    if (!challenge) {
        if (j.size() != 5)
            return policy("hello has unknown fields");
        return frame{hello_frame{v, *store, *term, *nonce}};
    }
    const std::string* mac = get_string(j, "mac", err);
    if (!mac)
        return policy(err);
    if (!valid_hex(*mac, 64, 64))
        return policy("mac must be 32 bytes of lowercase hex");
    if (j.size() != 6)
        return policy("challenge has unknown fields");
    return frame{challenge_frame{v, *store, *term, *nonce, *mac}};
}

decode_result decode_auth(const json& j) {
    std::string err;
    const std::string* mac = get_string(j, "mac", err);
    if (!mac)
        return policy(err);
    if (!valid_hex(*mac, 64, 64))
        return policy("mac must be 32 bytes of lowercase hex");
    if (j.size() != 2)
        return policy("auth has unknown fields");
    return frame{auth_frame{*mac}};
}

/// The v2 fields of a ready frame: "inc" (32 lowercase hex) and "rebuild" (a boolean), both
/// optional; never next to v1 marks.
bool get_ready_v2(const json& j, ready_frame& f, std::string& err) {
    auto inc = j.find("inc");
    auto rebuild = j.find("rebuild");
    if (inc == j.end() && rebuild == j.end())
        return true;
    if (!f.v2 && !f.hwm.empty()) {
        err = "ready mixes v1 marks and v2 fields";
        return false;
    }
    if (inc != j.end()) {
        if (!inc->is_string() || !valid_hex(inc->get_ref<const std::string&>(), 32, 32)) {
            err = "field inc must be 32 lowercase hex digits";
            return false;
        }
        f.inc = inc->get<std::string>();
    }
    if (rebuild != j.end()) {
        if (!rebuild->is_boolean()) {
            err = "field rebuild must be a boolean";
            return false;
        }
        f.rebuild = rebuild->get<bool>();
    }
    return true;
}

decode_result decode_ready(const json& j, const frame_limits& lim) {
    std::string err;
    ready_frame f;
    if (!get_marks(j, lim, f.hwm, f.ids, f.v2, err) || !get_ready_v2(j, f, err))
        return policy(err);
    if (j.size() != 2u + (j.contains("inc") ? 1u : 0u) + (j.contains("rebuild") ? 1u : 0u))
        return policy("ready has unknown fields");
    return frame{std::move(f)};
}

/// A news map: terminal id -> 0..2^53.
bool get_news_map(const json& j, const char* key, const frame_limits& lim,
                  std::map<std::string, std::uint64_t>& out, std::string& err) {
    constexpr std::uint64_t max_number = std::uint64_t{1} << 53;
    if (!get_hwm(j, key, lim, out, err))
        return false;
    for (const auto& [k, v] : out)
        if (v > max_number) {
            err = std::string("field ") + key + " values must be at most 2^53";
            return false;
        }
    return true;
}

/// A news origin list: an array of distinct terminal ids. Absent is an error unless optional.
bool get_origin_list(const json& j, const char* key, bool optional, const frame_limits& lim,
                     std::vector<std::string>& out, std::string& err) {
    auto it = j.find(key);
    if (it == j.end() && optional)
        return true;
    auto fail = [&](const char* why) {
        err = std::string("field ") + key + why;
        return false;
    };
    if (it == j.end() || !it->is_array())
        return fail(" must be an array");
    if (it->size() > lim.max_origins)
        return fail(" has too many origins");
    for (const auto& o : *it) {
        if (!o.is_string() || !valid_terminal_id(o.get_ref<const std::string&>()))
            return fail(" has an invalid origin id");
        out.push_back(o.get<std::string>());
    }
    auto sorted = out;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
        return fail(" names an origin twice");
    return true;
}

decode_result decode_news(const json& j, const frame_limits& lim) {
    std::string err;
    news_frame f;
    if (!get_news_map(j, "seen", lim, f.seen, err) ||
        !get_news_map(j, "cloud", lim, f.cloud, err) ||
        !get_origin_list(j, "cover", false, lim, f.cover, err) ||
        !get_origin_list(j, "holds", true, lim, f.holds, err))
        return policy(err);
    if (j.size() != 4u + (j.contains("holds") ? 1u : 0u))
        return policy("news has unknown fields");
    return frame{std::move(f)};
}

decode_result decode_batch(const json& j, const frame_limits& lim) {
    std::string err;
    batch_frame f;
    if (!get_u64(j, "n", f.n, err))
        return policy(err);
    if (f.n == 0)
        return policy("batch n must be >= 1");
    auto ms = j.find("messages");
    if (ms == j.end() || !ms->is_array())
        return policy("batch messages must be an array");
    if (ms->empty())
        return policy("batch is empty");
    if (ms->size() > lim.max_messages)
        return policy("batch has too many messages");
    f.messages.reserve(ms->size());
    for (const auto& m : *ms) {
        message out;
        if (!decode_message(m, lim, out, err))
            return policy(err);
        f.messages.push_back(std::move(out));
    }
    if (j.contains("floor") && !get_hwm(j, "floor", lim, f.floor, err))
        return policy(err);
    if (j.size() != 3u + (j.contains("floor") ? 1u : 0u))
        return policy("batch has unknown fields");
    return frame{std::move(f)};
}

decode_result decode_ack(const json& j, const frame_limits& lim) {
    std::string err;
    ack_frame f;
    if (!get_u64(j, "n", f.n, err))
        return policy(err);
    if (f.n == 0)
        return policy("ack n must be >= 1");
    if (!get_marks(j, lim, f.hwm, f.ids, f.v2, err))
        return policy(err);
    if (j.size() != 3)
        return policy("ack has unknown fields");
    return frame{std::move(f)};
}

} // namespace

decode_result decode_frame(std::string_view text, const frame_limits& lim) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded())
        return decode_error{close_code::invalid_payload, "frame is not valid JSON"};
    if (!j.is_object())
        return policy("frame must be a JSON object");
    std::string err;
    const std::string* type = get_string(j, "type", err);
    if (!type)
        return policy("frame has no type");
    if (*type == "hello" || *type == "challenge")
        return decode_hello_or_challenge(j, *type == "challenge");
    if (*type == "auth")
        return decode_auth(j);
    if (*type == "ready")
        return decode_ready(j, lim);
    if (*type == "batch")
        return decode_batch(j, lim);
    if (*type == "ack")
        return decode_ack(j, lim);
    if (*type == "news")
        return decode_news(j, lim);
    if (*type == "catalog_have")
        return detail::decode_catalog_have(j, lim);
    if (*type == "catalog")
        return detail::decode_catalog(j, lim);
    return policy("unknown frame type");
}

std::string encode(const hello_frame& f) {
    return dump(json{{"type", "hello"},
                     {"v", f.version},
                     {"store", f.store},
                     {"terminal", f.terminal},
                     {"nonce", f.nonce}});
}

std::string encode(const challenge_frame& f) {
    return dump(json{{"type", "challenge"},
                     {"v", f.version},
                     {"store", f.store},
                     {"terminal", f.terminal},
                     {"nonce", f.nonce},
                     {"mac", f.mac}});
}

std::string encode(const auth_frame& f) {
    return dump(json{{"type", "auth"}, {"mac", f.mac}});
}

std::string encode(const ready_frame& f) {
    json j{{"type", "ready"}, {"hwm", marks_json(f.hwm, f.ids, f.v2)}};
    if (f.v2 && !f.inc.empty()) // v1 frames never carry the v2 fields
        j["inc"] = f.inc;
    if (f.v2 && f.rebuild)
        j["rebuild"] = true;
    return dump(j);
}

namespace {

/// A string value as dump() writes it. The fields written here are validated identifiers
/// (UUID, terminal id, topic, priority); anything else goes through the library's escaping.
void append_string(std::string& out, const std::string& s) {
    bool plain = std::all_of(s.begin(), s.end(), [](unsigned char c) {
        return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
    });
    if (!plain) {
        out += dump(json(s));
        return;
    }
    out += '"';
    out += s;
    out += '"';
}

/// One message object exactly as a json DOM of its fields dumps it (keys sorted), with the data
/// embedded verbatim: it is canonical_json text already, which parse + dump gives back as is.
void append_message(std::string& out, const message& m) {
    // A row whose data is not JSON (a damaged file) must not become a frame the peer rejects
    // whole: refused here, as parsing it did before (accept() builds no DOM).
    if (!json::accept(m.data))
        throw std::invalid_argument("message " + m.id + ": stored data is not valid JSON");
    out += R"({"created_at":)";
    out += std::to_string(m.created_at_ms);
    out += R"(,"data":)";
    out += m.data;
    out += R"(,"id":)";
    append_string(out, m.id);
    out += R"(,"origin":)";
    append_string(out, m.origin);
    out += R"(,"priority":)";
    append_string(out, std::string(to_string(m.prio)));
    out += R"(,"seq":)";
    out += std::to_string(m.seq);
    out += R"(,"topic":)";
    append_string(out, m.topic);
    out += '}';
}

} // namespace

// Written directly rather than through a json DOM (the sender's hot path when a peer catches
// up): the same text, keys in dump()'s sorted order, without parsing every message's data
// into a DOM only to serialize it again.
std::string encode(const batch_frame& f) {
    std::size_t size = 64;
    for (const auto& m : f.messages)
        size += encoded_size(m);
    std::string out;
    out.reserve(size);
    out += '{';
    if (!f.floor.empty()) {
        out += R"("floor":)";
        out += dump(hwm_json(f.floor));
        out += ',';
    }
    out += R"("messages":[)";
    for (std::size_t i = 0; i < f.messages.size(); ++i) {
        if (i)
            out += ',';
        append_message(out, f.messages[i]);
    }
    out += R"(],"n":)";
    out += std::to_string(f.n);
    out += R"(,"type":"batch"})";
    return out;
}

std::string encode(const ack_frame& f) {
    return dump(json{{"type", "ack"}, {"n", f.n}, {"hwm", marks_json(f.hwm, f.ids, f.v2)}});
}

std::string encode(const news_frame& f) {
    return dump(json{{"type", "news"},
                     {"seen", hwm_json(f.seen)},
                     {"cloud", hwm_json(f.cloud)},
                     {"cover", json(f.cover)},
                     {"holds", json(f.holds)}});
}

std::size_t encoded_size(const message& m) {
    // id(36) origin topic priority data plus the fixed keys and numbers; exact enough for a cap
    // because data dominates and it is embedded verbatim (canonical form round-trips).
    return 110 + m.id.size() + m.origin.size() + m.topic.size() + m.data.size() + 40;
}

} // namespace lanesync::protocol
