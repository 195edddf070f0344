// The v3 catalog frames (docs/protocol.md "Catalog"): catalog_have and catalog, decoded strictly
// and encoded with sorted keys like every other frame. Their rules (what to send, what to
// accept) are in protocol/catalog_sync.cpp.
#include "protocol/catalog_sync.hpp"
#include "protocol/frame_fields.hpp"
#include "protocol/frames.hpp"

#include <nlohmann/json.hpp>

#include <limits>

namespace lanesync::protocol {
namespace {

using json = nlohmann::json;
using detail::get_string;
using detail::policy;

/// obj[key] as an integer in [min, 2^63-1].
bool get_int(const json& obj, const char* key, std::int64_t min, std::int64_t& out,
             std::string& err) {
    auto it = obj.find(key);
    bool ok = it != obj.end() && it->is_number_integer() &&
              !(it->is_number_unsigned() &&
                it->get<std::uint64_t>() >
                    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
    if (ok) {
        out = it->get<std::int64_t>();
        ok = out >= min;
    }
    if (!ok)
        err = std::string("field ") + key + " must be an integer >= " + std::to_string(min);
    return ok;
}

bool get_bool(const json& obj, const char* key, bool& out, std::string& err) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_boolean()) {
        err = std::string("field ") + key + " must be a boolean";
        return false;
    }
    out = it->get<bool>();
    return true;
}

bool decode_entry(const json& e, catalog_have_entry& out, std::string& err) {
    if (!e.is_object()) {
        err = "catalog_have scopes must be objects";
        return false;
    }
    const std::string* scope = get_string(e, "scope", err);
    if (!scope)
        return false;
    if (!valid_catalog_scope(*scope)) {
        err = "catalog_have scope is invalid";
        return false;
    }
    out.scope = *scope;
    if (!get_int(e, "through", 0, out.through, err) || !get_int(e, "horizon", 0, out.horizon, err))
        return false;
    std::size_t fields = 3;
    if (auto s = e.find("snapshot"); s != e.end()) {
        ++fields;
        if (s->is_string() && s->get_ref<const std::string&>() == "busy")
            out.snapshot = catalog_have_entry::snapshot_state::busy;
        else if (s->is_string() && s->get_ref<const std::string&>() == "yours")
            out.snapshot = catalog_have_entry::snapshot_state::yours;
        else {
            err = "catalog_have snapshot must be \"busy\" or \"yours\"";
            return false;
        }
    }
    if (e.size() != fields) {
        err = "catalog_have scope has unknown fields";
        return false;
    }
    return true;
}

/// One change of a catalog page: key, version, deleted, data, changed_at_ms; nothing else.
bool decode_change(const json& c, const frame_limits& lim, catalog_change& out, std::string& err) {
    if (!c.is_object()) {
        err = "catalog changes must be objects";
        return false;
    }
    const std::string* key = get_string(c, "key", err);
    if (!key)
        return false;
    if (!valid_catalog_key(*key)) {
        err = "catalog change key must be 1-256 bytes without control characters";
        return false;
    }
    out.key = *key;
    if (!get_int(c, "version", 1, out.version, err) || !get_bool(c, "deleted", out.deleted, err) ||
        !get_int(c, "changed_at_ms", 0, out.changed_at_ms, err))
        return false;
    auto d = c.find("data");
    if (d == c.end()) {
        err = "catalog change has no data";
        return false;
    }
    if (out.deleted != d->is_null()) {
        err = "catalog change data must be null exactly when deleted";
        return false;
    }
    if (json_too_deep(*d)) {
        err = "catalog change data nests too deep";
        return false;
    }
    out.data = canonical_json(*d);
    if (out.data.size() > lim.max_catalog_data_bytes) {
        err = "catalog change data over the size limit";
        return false;
    }
    if (c.size() != 5) {
        err = "catalog change has unknown fields";
        return false;
    }
    return true;
}

bool decode_changes(const json& j, const frame_limits& lim, catalog_page& page, std::string& err) {
    auto cs = j.find("changes");
    if (cs == j.end() || !cs->is_array()) {
        err = "field changes must be an array";
        return false;
    }
    if (cs->size() > lim.max_catalog_changes) {
        err = "catalog page has too many changes";
        return false;
    }
    page.changes.reserve(cs->size());
    for (const auto& c : *cs) {
        catalog_change out;
        if (!decode_change(c, lim, out, err))
            return false;
        out.scope = page.scope;
        page.changes.push_back(std::move(out));
    }
    return true;
}

} // namespace

namespace detail {

decode_result decode_catalog_have(const json& j, const frame_limits& lim) {
    std::string err;
    catalog_have_frame f;
    std::int64_t acked = 0;
    if (!get_int(j, "acked", 0, acked, err))
        return policy(err);
    f.acked = static_cast<std::uint64_t>(acked);
    auto ss = j.find("scopes");
    if (ss == j.end() || !ss->is_array())
        return policy("field scopes must be an array");
    if (ss->size() > lim.max_scopes)
        return policy("catalog_have has too many scopes");
    for (const auto& e : *ss) {
        catalog_have_entry out;
        if (!decode_entry(e, out, err))
            return policy(err);
        for (const auto& seen : f.scopes)
            if (seen.scope == out.scope)
                return policy("catalog_have names a scope twice");
        f.scopes.push_back(std::move(out));
    }
    if (j.size() != 3)
        return policy("catalog_have has unknown fields");
    return frame{std::move(f)};
}

decode_result decode_catalog(const json& j, const frame_limits& lim) {
    std::string err;
    catalog_frame f;
    auto& p = f.page;
    std::int64_t n = 0;
    const std::string* scope = nullptr;
    if (!get_int(j, "n", 1, n, err) || !(scope = get_string(j, "scope", err)))
        return policy(err);
    if (!valid_catalog_scope(*scope))
        return policy("catalog scope is invalid");
    f.n = static_cast<std::uint64_t>(n);
    p.scope = *scope;
    if (!get_int(j, "since", 0, f.since, err) || !get_bool(j, "reset", p.reset, err) ||
        !get_bool(j, "continues_snapshot", p.continues_snapshot, err) ||
        !get_bool(j, "done", p.done, err) || !get_int(j, "through", 1, p.through, err) ||
        !get_int(j, "head", 0, p.head, err) || !decode_changes(j, lim, p, err))
        return policy(err);
    if (j.size() != 10)
        return policy("catalog has unknown fields");
    if (auto why = check_page_shape(f); !why.empty())
        return policy(why);
    return frame{std::move(f)};
}

} // namespace detail

std::string encode(const catalog_have_frame& f) {
    json scopes = json::array();
    for (const auto& e : f.scopes) {
        json o{{"scope", e.scope}, {"through", e.through}, {"horizon", e.horizon}};
        if (e.snapshot == catalog_have_entry::snapshot_state::busy)
            o["snapshot"] = "busy";
        else if (e.snapshot == catalog_have_entry::snapshot_state::yours)
            o["snapshot"] = "yours";
        scopes.push_back(std::move(o));
    }
    return json{{"type", "catalog_have"}, {"acked", f.acked}, {"scopes", std::move(scopes)}}.dump(
        -1, ' ', false, json::error_handler_t::strict);
}

std::string encode(const catalog_frame& f) {
    const auto& p = f.page;
    json changes = json::array();
    for (const auto& c : p.changes) {
        // Stored data is canonical JSON text; a damaged row must not become a frame the peer
        // refuses whole (the session skips the page: lanes/catalog_peer.cpp).
        changes.push_back(json{{"key", c.key},
                               {"version", c.version},
                               {"deleted", c.deleted},
                               {"data", json::parse(c.data)},
                               {"changed_at_ms", c.changed_at_ms}});
    }
    return json{{"type", "catalog"}, {"n", f.n},
                {"scope", p.scope},  {"since", f.since},
                {"reset", p.reset},  {"continues_snapshot", p.continues_snapshot},
                {"done", p.done},    {"through", p.through},
                {"head", p.head},    {"changes", std::move(changes)}}
        .dump(-1, ' ', false, json::error_handler_t::strict);
}

} // namespace lanesync::protocol
