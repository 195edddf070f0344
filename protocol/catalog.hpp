#pragma once
/// Head office's data on the lane (downstream): the change model shared by the cloud puller,
/// the outbox, the peer mesh and the local API. Pure types: no Asio, no SQLite.
///
/// Versions are assigned by the cloud's change log, one number space for every scope, and only
/// grow. A lane holds per (scope, key) the version of the last change it applied, and per scope
/// `through`: every change of that scope with a version <= through has been applied (changes
/// arrive in version order, from the cloud or from a peer, so a scope's state is always a
/// complete prefix of the cloud's log). See docs/downstream.md.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lanesync::protocol {

/// One change of one (scope, key): an upsert with its data, or a delete (a tombstone).
struct catalog_change {
    std::string scope;              ///< [a-z0-9_.-]{1,64}: prices, products, customers, ...
    std::string key;                ///< 1-256 bytes of UTF-8, the entity's key in that scope
    std::int64_t version = 0;       ///< the cloud's version of this change (> 0)
    bool deleted = false;           ///< a tombstone: data is "null"
    std::string data = "null";      ///< the JSON value, canonical compact text (canonical_json)
    std::int64_t changed_at_ms = 0; ///< when head office committed it (unix ms; informational)

    friend bool operator==(const catalog_change&, const catalog_change&) = default;
};

/// A page of changes of one scope, in version order, from the cloud (sync-pull) or a peer.
struct catalog_page {
    std::string scope;
    /// The sender starts this scope from scratch: the receiver's keys not sent again before
    /// the snapshot ends were deleted where it came from (their tombstones are gone).
    bool reset = false;
    /// The receiver's scope is complete through this version after applying the page (>= the
    /// last change's version; may be higher when the sender skipped superseded versions).
    std::int64_t through = 0;
    /// The last page of a snapshot (reset) or of a catch-up: nothing more is known after it.
    bool done = true;
    /// Highest version the sender knows for this scope (the cloud's head), 0 when unknown.
    std::int64_t head = 0;
    std::vector<catalog_change> changes;
    bool continues_snapshot = false; ///< a later page of a snapshot whose first page had reset
    std::string resume;              ///< the sender's token for the snapshot's next page ("" none)
};

/// What a lane holds of one scope (status, the mesh's catalog_have frame, the puller's cursor).
struct catalog_scope_state {
    std::string scope;
    std::int64_t through = 0;       ///< complete through this version (the pull cursor)
    std::int64_t horizon = 0;       ///< tombstones at or below this version may have been purged
    std::int64_t head = 0;          ///< highest version last heard of (cloud or peer), 0 unknown
    bool snapshot_active = false;   ///< a reset snapshot is under way (not served to peers)
    std::uint64_t keys = 0;         ///< live keys held
    std::int64_t applied_at_ms = 0; ///< last page applied (unix ms, 0 never)
    std::string resume; ///< snapshot under way: the sender's token for its next page ("" none)
    std::string source; ///< who sent the last page applied: "cloud" or a peer's terminal id

    friend bool operator==(const catalog_scope_state&, const catalog_scope_state&) = default;
};

/// A scope name: 1-64 of [a-z0-9_.-].
inline bool valid_catalog_scope(std::string_view s) {
    if (s.empty() || s.size() > 64)
        return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    return true;
}

/// A key: 1-256 bytes, no control characters (UTF-8 is checked by the JSON layers).
inline bool valid_catalog_key(std::string_view k) {
    if (k.empty() || k.size() > 256)
        return false;
    for (char c : k)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            return false;
    return true;
}

} // namespace lanesync::protocol
