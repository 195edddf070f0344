#pragma once
/// The pure half of the catalog routes (docs/api.md, "Head office's data"):
/// `GET /v1/catalog/{scope}/{key}` and `GET /v1/changes?scope=S&since=V&limit=N[&timeout_ms=T]`.
/// Checking the input and building the answers; no sockets, no storage.

#include "agent/api_routes.hpp"
#include "protocol/catalog.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace lanesync::agent::api {

inline constexpr std::string_view catalog_prefix = "/v1/catalog/";
inline constexpr std::size_t changes_default_limit = 100;
inline constexpr std::size_t changes_max_limit = 1000;

/// GET /v1/catalog/{scope}/{key}: the path after the prefix split at its first '/' (the key
/// may hold more, percent-encoded or not); 400 for a bad scope or key.
struct catalog_key {
    std::string scope, key;
};
std::variant<catalog_key, response> check_catalog_path(std::string_view rest);

/// ... after the reads: 400 when the scope is not held here, 404 when the key is not held or
/// deleted (a tombstone), else 200 {"scope", "key", "version", "data", "changed_at",
/// "through"}.
response catalog_answer(const catalog_key& k,
                        const std::vector<protocol::catalog_scope_state>& held,
                        const std::optional<protocol::catalog_change>& row);

/// GET /v1/changes: `scope` (required), `since` (0..2^53, default 0), `limit` (1..1000,
/// default 100), `timeout_ms` (1..tuning::api_wait_max: wait that long for a change when
/// there is none after `since`), each at most once, nothing else. 400 otherwise.
struct changes_query {
    std::string scope;
    std::int64_t since = 0;
    std::size_t limit = changes_default_limit;
    std::chrono::milliseconds timeout{0};
};
std::variant<changes_query, response> check_changes(const target& t);

/// The scope's state among `held`, or the 400 for a scope this lane does not hold.
std::variant<protocol::catalog_scope_state, response>
held_scope(const std::string& scope, const std::vector<protocol::catalog_scope_state>& held);

/// 200 {"scope", "since", "through", "head", "behind", "snapshot_active", "changes": [{key,
/// version, deleted, data, changed_at}], "next_since" (the last change's version, or since),
/// "more" (the page is full)}.
response changes_answer(const changes_query& q, const protocol::catalog_scope_state& st,
                        const std::vector<protocol::catalog_change>& rows);

} // namespace lanesync::agent::api
