#pragma once
/// Small helpers shared by the peer_machine's source files (not part of the API).

#include "protocol/frames.hpp"

#include <string>

namespace lanesync::protocol::detail {

inline std::uint64_t seq_of(const hwm_map& h, const std::string& origin) {
    auto it = h.find(origin);
    return it == h.end() ? 0 : it->second;
}

inline std::string id_of(const tip_ids& ids, const std::string& origin) {
    auto it = ids.find(origin);
    return it == ids.end() ? std::string() : it->second;
}

/// An id shortened for a close reason: its last 12 hex digits (the random part of a UUIDv7;
/// the leading digits are a timestamp shared by ids of the same minute).
inline std::string short_id(const std::string& id) {
    if (id.empty())
        return "none";
    return id.size() > 12 ? id.substr(id.size() - 12) : id;
}

} // namespace lanesync::protocol::detail
